//! The rules an approval keeps, written once: the host checks them at load
//! time ([`verify_release`](crate::verify_release)), the registry when it
//! records an approval, with the same words. An approval is for exactly one
//! release statement, grants only what that release requests, lists its
//! grants canonically, agrees with every other approval of the release, and
//! counts for no key that published the release.

use crate::capabilities::Grants;
use crate::limits::Limits;
use crate::statement::{ApprovalStatement, beyond, capability_list, parse_capabilities};

/// Why an approval statement cannot approve a release.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalFault {
    /// It approves another release or another statement of it.
    #[error(
        "the approval is for {approves} (statement {statement}), this release is {release} (statement {release_statement})"
    )]
    OtherRelease {
        /// `org/name@version` it names.
        approves: String,
        /// The statement digest it names.
        statement: String,
        /// The release checked against.
        release: String,
        /// That release's statement digest.
        release_statement: String,
    },
    /// A granted capability does not parse.
    #[error("{0}")]
    Unparsable(String),
    /// The grants are not listed sorted and unique.
    #[error("capabilities must be sorted and unique: {expected:?}")]
    NotCanonical {
        /// The canonical list.
        expected: Vec<String>,
    },
    /// It grants what the release does not request.
    #[error("the approval grants {} that the release does not request", .0.join(", "))]
    Unrequested(Vec<String>),
}

impl ApprovalStatement {
    /// Checks the rules of one approval against the release it must approve:
    /// `release` (`org/name@version`) with the statement digest
    /// `release_statement`, requesting `requested`. Returns the grants.
    pub fn check_for(
        &self,
        release: &str,
        release_statement: &str,
        requested: &[String],
    ) -> Result<Grants, ApprovalFault> {
        if self.release != release || self.release_statement != release_statement {
            return Err(ApprovalFault::OtherRelease {
                approves: self.release.clone(),
                statement: self.release_statement.clone(),
                release: release.to_owned(),
                release_statement: release_statement.to_owned(),
            });
        }
        let grants = parse_capabilities(&self.capabilities)
            .map_err(|e| ApprovalFault::Unparsable(e.to_string()))?;
        let canonical = capability_list(&grants);
        if canonical != self.capabilities {
            return Err(ApprovalFault::NotCanonical {
                expected: canonical,
            });
        }
        let extra = beyond(&self.capabilities, requested);
        if !extra.is_empty() {
            return Err(ApprovalFault::Unrequested(extra));
        }
        Ok(grants)
    }

    /// Whether this approval grants exactly what another did: approvals of
    /// one release must agree on capabilities and limits.
    pub fn agrees_with(&self, capabilities: &[String], limits: &Limits) -> bool {
        self.capabilities == capabilities && self.limits == *limits
    }
}

/// Whether `signer` (a key id) counts as an approver of a release published
/// with `publisher_key`: the publishing key never does.
pub fn counts_as_approver(signer: &str, publisher_key: &str) -> bool {
    signer != publisher_key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(release: &str, statement: &str, capabilities: &[&str]) -> ApprovalStatement {
        ApprovalStatement {
            release: release.into(),
            release_statement: statement.into(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            limits: Limits::default(),
        }
    }

    fn requested(capabilities: &[&str]) -> Vec<String> {
        capabilities.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn an_approval_is_for_one_release_and_grants_within_its_request() {
        let asked = requested(&["http:api.example.com", "kv"]);
        let fine = approval("acme/a@1.0.0", "sha256:s", &["kv"]);
        assert!(fine.check_for("acme/a@1.0.0", "sha256:s", &asked).is_ok());
        // Everything requested, and nothing, are both within the request.
        let all = approval("acme/a@1.0.0", "sha256:s", &["http:api.example.com", "kv"]);
        assert!(all.check_for("acme/a@1.0.0", "sha256:s", &asked).is_ok());
        assert!(
            approval("acme/a@1.0.0", "sha256:s", &[])
                .check_for("acme/a@1.0.0", "sha256:s", &asked)
                .is_ok()
        );

        for (release, statement) in [("acme/a@1.0.1", "sha256:s"), ("acme/a@1.0.0", "sha256:t")] {
            assert!(matches!(
                fine.check_for(release, statement, &asked),
                Err(ApprovalFault::OtherRelease { .. })
            ));
        }
        let more = approval("acme/a@1.0.0", "sha256:s", &["config", "kv"]);
        assert_eq!(
            more.check_for("acme/a@1.0.0", "sha256:s", &asked),
            Err(ApprovalFault::Unrequested(vec!["config".into()]))
        );
        let unsorted = approval("acme/a@1.0.0", "sha256:s", &["kv", "http:api.example.com"]);
        assert!(matches!(
            unsorted.check_for("acme/a@1.0.0", "sha256:s", &asked),
            Err(ApprovalFault::NotCanonical { .. })
        ));
        let twice = approval("acme/a@1.0.0", "sha256:s", &["kv", "kv"]);
        assert!(matches!(
            twice.check_for("acme/a@1.0.0", "sha256:s", &asked),
            Err(ApprovalFault::NotCanonical { .. })
        ));
        let nonsense = approval("acme/a@1.0.0", "sha256:s", &["root"]);
        assert!(matches!(
            nonsense.check_for("acme/a@1.0.0", "sha256:s", &asked),
            Err(ApprovalFault::Unparsable(_))
        ));
    }

    #[test]
    fn approvals_agree_only_on_the_same_grants_and_limits() {
        let one = approval("acme/a@1.0.0", "sha256:s", &["kv"]);
        assert!(one.agrees_with(&requested(&["kv"]), &Limits::default()));
        assert!(!one.agrees_with(&requested(&[]), &Limits::default()));
        let other_limits = Limits {
            fuel: 1,
            ..Limits::default()
        };
        assert!(!one.agrees_with(&requested(&["kv"]), &other_limits));
        assert!(counts_as_approver("k-admin", "k-publisher"));
        assert!(!counts_as_approver("k-publisher", "k-publisher"));
    }
}
