//! Release verification on the host's side (DESIGN.md section 6): before a
//! release is loaded, its bytes, its publisher's signature and its approvals
//! are checked against keys the host was configured with, never against what
//! a database says.

use crate::approval::counts_as_approver;
use crate::capabilities::Grants;
use crate::limits::Limits;
use crate::statement::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, RELEASE_PAYLOAD_TYPE, ReleaseStatement,
};
use crate::trust::{Envelope, PublicKey};

/// What the host trusts: the pinned admin keys and how many must approve.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    /// Admin keys whose approvals count.
    pub admin_keys: Vec<PublicKey>,
    /// Approvals from distinct pinned keys a release needs (at least 1).
    pub approvals_required: usize,
}

/// Why a release was refused at load time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// The component's bytes are not the ones the publisher signed.
    #[error("the component is {found}, the signed release statement names {expected}")]
    DigestMismatch {
        /// From the statement.
        expected: String,
        /// Of the bytes.
        found: String,
    },
    /// The publisher's signature does not verify.
    #[error("the release statement's signature does not verify under publisher key {0}")]
    PublisherSignature(String),
    /// The statement is malformed or is not the one expected.
    #[error("the release statement is not acceptable: {0}")]
    Statement(String),
    /// Not enough valid approvals from distinct pinned admin keys.
    #[error("{found} valid approval(s) from pinned admin keys, {required} required{}", if .rejected.is_empty() { String::new() } else { format!(" (not counted: {})", .rejected.join("; ")) })]
    NotEnoughApprovals {
        /// Valid ones.
        found: usize,
        /// Needed.
        required: usize,
        /// Why the others did not count.
        rejected: Vec<String>,
    },
    /// Valid approvals grant different things.
    #[error("the approvals disagree on the capabilities or limits granted")]
    ApprovalsDisagree,
}

/// A release the host may run, with what it was granted.
#[derive(Clone, Debug)]
pub struct VerifiedRelease {
    /// The publisher's statement.
    pub statement: ReleaseStatement,
    /// `sha256:` of the statement.
    pub statement_digest: String,
    /// Granted capabilities, as the approvals list them.
    pub capabilities: Vec<String>,
    /// Granted capabilities, parsed.
    pub grants: Grants,
    /// Granted limits.
    pub limits: Limits,
    /// Key ids of the admin keys whose approvals counted.
    pub approvers: Vec<String>,
}

/// Checks a release end to end: `component` hashes to the digest in the
/// statement, `publisher` signed the statement, and at least
/// `policy.approvals_required` approvals from distinct pinned admin keys (none
/// of them the publisher's) approve exactly this statement and agree on grants
/// within what was requested.
pub fn verify_release(
    release: &Envelope,
    approvals: &[Envelope],
    component: &[u8],
    publisher: &PublicKey,
    policy: &TrustPolicy,
) -> Result<VerifiedRelease, Untrusted> {
    let verified = release
        .verify(RELEASE_PAYLOAD_TYPE, std::slice::from_ref(publisher))
        .map_err(|_| Untrusted::PublisherSignature(publisher.key_id()))?;
    let statement: ReleaseStatement = serde_json::from_slice(&verified.payload)
        .map_err(|e| Untrusted::Statement(e.to_string()))?;
    if statement.publisher_key != publisher.key_id() {
        return Err(Untrusted::Statement(format!(
            "it names publisher key {}, signed by {}",
            statement.publisher_key,
            publisher.key_id()
        )));
    }
    let found = crate::Digest::of(component);
    if found != statement.component.digest || component.len() as u64 != statement.component.size {
        return Err(Untrusted::DigestMismatch {
            expected: statement.component.digest.to_string(),
            found: found.to_string(),
        });
    }

    let reference = statement.reference();
    let mut approvers: Vec<String> = Vec::new();
    let mut rejected = Vec::new();
    let mut granted: Option<(Vec<String>, Limits, Grants)> = None;
    for approval in approvals {
        let checked = match approval.verify(APPROVAL_PAYLOAD_TYPE, &policy.admin_keys) {
            Ok(checked) => checked,
            Err(e) => {
                rejected.push(e.to_string());
                continue;
            }
        };
        let Ok(approved) = serde_json::from_slice::<ApprovalStatement>(&checked.payload) else {
            rejected.push("a malformed approval statement".into());
            continue;
        };
        let grants = match approved.check_for(
            &reference,
            &verified.payload_digest,
            &statement.capabilities,
        ) {
            Ok(grants) => grants,
            Err(fault) => {
                rejected.push(fault.to_string());
                continue;
            }
        };
        match &granted {
            None => {
                granted = Some((
                    approved.capabilities.clone(),
                    approved.limits.clone(),
                    grants,
                ))
            }
            Some((capabilities, limits, _)) if !approved.agrees_with(capabilities, limits) => {
                return Err(Untrusted::ApprovalsDisagree);
            }
            Some(_) => {}
        }
        for signer in checked.signers {
            if !counts_as_approver(&signer, &statement.publisher_key) {
                rejected.push(format!("the publisher's own key {signer}"));
            } else if !approvers.contains(&signer) {
                approvers.push(signer);
            }
        }
    }
    let required = policy.approvals_required.max(1);
    let Some((capabilities, limits, grants)) = granted.filter(|_| approvers.len() >= required)
    else {
        return Err(Untrusted::NotEnoughApprovals {
            found: approvers.len(),
            required,
            rejected,
        });
    };
    Ok(VerifiedRelease {
        statement,
        statement_digest: verified.payload_digest,
        capabilities,
        grants,
        limits,
        approvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::ComponentRef;
    use crate::trust::PrivateKey;
    use std::collections::BTreeMap;

    struct World {
        publisher: PrivateKey,
        admins: Vec<PrivateKey>,
        bytes: Vec<u8>,
        release: Envelope,
        statement: ReleaseStatement,
    }

    fn world() -> World {
        let publisher = PrivateKey::generate();
        let bytes = b"component bytes".to_vec();
        let statement = ReleaseStatement {
            name: "acme/hello".into(),
            version: "1.0.0".into(),
            description: String::new(),
            component: ComponentRef {
                digest: crate::Digest::of(&bytes),
                size: bytes.len() as u64,
            },
            capabilities: vec!["config".into(), "kv".into()],
            limits: Limits::default(),
            dependencies: BTreeMap::new(),
            publisher_key: publisher.public_key().key_id(),
        };
        let release = publisher.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
        World {
            admins: vec![
                PrivateKey::generate(),
                PrivateKey::generate(),
                PrivateKey::generate(),
            ],
            publisher,
            bytes,
            release,
            statement,
        }
    }

    fn approve(w: &World, key: &PrivateKey, caps: &[&str]) -> Envelope {
        let digest = w
            .release
            .verify(RELEASE_PAYLOAD_TYPE, &[w.publisher.public_key()])
            .unwrap()
            .payload_digest;
        let approval = ApprovalStatement {
            release: w.statement.reference(),
            release_statement: digest,
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            limits: Limits {
                fuel: 1000,
                ..Limits::default()
            },
        };
        key.sign(APPROVAL_PAYLOAD_TYPE, &approval).unwrap()
    }

    fn policy(w: &World, n: usize) -> TrustPolicy {
        TrustPolicy {
            admin_keys: w
                .admins
                .iter()
                .take(2)
                .map(PrivateKey::public_key)
                .collect(),
            approvals_required: n,
        }
    }

    #[test]
    fn a_release_approved_by_a_pinned_key_verifies_with_its_grants() {
        let w = world();
        let approvals = [approve(&w, &w.admins[0], &["kv"])];
        let ok = verify_release(
            &w.release,
            &approvals,
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap();
        assert!(ok.grants.kv && !ok.grants.config);
        assert_eq!(ok.limits.fuel, 1000);
        assert_eq!(ok.approvers, vec![w.admins[0].public_key().key_id()]);
    }

    #[test]
    fn tampered_bytes_are_refused() {
        let w = world();
        let approvals = [approve(&w, &w.admins[0], &[])];
        let err = verify_release(
            &w.release,
            &approvals,
            b"component bytez",
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(matches!(err, Untrusted::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn approvals_by_unpinned_keys_do_not_count() {
        let w = world();
        let approvals = [approve(&w, &w.admins[2], &[])];
        let err = verify_release(
            &w.release,
            &approvals,
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Untrusted::NotEnoughApprovals {
                    found: 0,
                    required: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn n_approvals_need_n_distinct_pinned_keys() {
        let w = world();
        let one = approve(&w, &w.admins[0], &[]);
        let err = verify_release(
            &w.release,
            &[one.clone(), one.clone()],
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 2),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Untrusted::NotEnoughApprovals {
                    found: 1,
                    required: 2,
                    ..
                }
            ),
            "{err}"
        );
        let two = approve(&w, &w.admins[1], &[]);
        verify_release(
            &w.release,
            &[one, two],
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 2),
        )
        .unwrap();
    }

    #[test]
    fn an_edited_approval_or_statement_is_refused() {
        let w = world();
        let mut approval = approve(&w, &w.admins[0], &["kv"]);
        approval.payload = approve(&w, &w.admins[0], &["config", "kv"])
            .payload
            .replace('A', "B");
        let err = verify_release(
            &w.release,
            &[approval],
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(matches!(err, Untrusted::NotEnoughApprovals { .. }), "{err}");

        let mut release = w.release.clone();
        release.payload = approve(&w, &w.admins[0], &[]).payload;
        let approvals = [approve(&w, &w.admins[0], &[])];
        let err = verify_release(
            &release,
            &approvals,
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(matches!(err, Untrusted::PublisherSignature(_)), "{err}");
    }

    #[test]
    fn the_publisher_cannot_approve_and_grants_stay_within_the_request() {
        let mut w = world();
        w.admins[0] = PrivateKey::from_pem(&w.publisher.to_pem()).unwrap();
        let own = approve(&w, &w.admins[0], &[]);
        let err = verify_release(
            &w.release,
            &[own],
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("publisher's own key"), "{err}");

        let w = world();
        let greedy = approve(&w, &w.admins[0], &["env:HOME", "kv"]);
        let err = verify_release(
            &w.release,
            &[greedy],
            &w.bytes,
            &w.publisher.public_key(),
            &policy(&w, 1),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("grants env:HOME that the release does not request"),
            "{err}"
        );
    }
}
