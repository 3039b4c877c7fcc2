//! The approval rules that need no database: who may not approve a release.
//! What an approval statement itself must be (for this release, within its
//! request, canonical, agreeing) is `warden_host`'s `ApprovalStatement::check_for`,
//! which the host also applies at load time.

/// An approving key, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    /// Its key id.
    pub key_id: &'a str,
    /// Its registered owner.
    pub owner: &'a str,
}

/// Who published the release being approved.
#[derive(Debug, Clone, Copy)]
pub struct Publisher<'a> {
    /// The key that signed the release statement.
    pub key_id: &'a str,
    /// That key's registered owner, if the key is still registered.
    pub owner: Option<&'a str>,
    /// The API token that published it.
    pub token_id: &'a str,
}

/// Why an approval is a self-approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfApproval {
    /// Signed with the very key that signed the release.
    #[error("key {key_id} signed the release; a publisher cannot approve their own release")]
    PublishingKey {
        /// The key.
        key_id: String,
    },
    /// Signed with another key of the same owner.
    #[error(
        "key {key_id} belongs to the release's publisher ({owner}); a publisher cannot approve their own release"
    )]
    SameOwner {
        /// The key.
        key_id: String,
        /// Their owner.
        owner: String,
    },
    /// Sent with the token that published the release.
    #[error("this token published the release; a publisher cannot approve their own release")]
    PublishingToken,
}

/// Nobody approves their own release: not with the publishing key, not with
/// another key of the same owner, not with the publishing token. The one
/// place this rule lives.
pub fn check_not_self_approval(
    publisher: Publisher<'_>,
    approvers: &[Approver<'_>],
    approving_token: &str,
) -> Result<(), SelfApproval> {
    for approver in approvers {
        if !warden_host::counts_as_approver(approver.key_id, publisher.key_id) {
            return Err(SelfApproval::PublishingKey {
                key_id: approver.key_id.to_owned(),
            });
        }
        if publisher.owner == Some(approver.owner) {
            return Err(SelfApproval::SameOwner {
                key_id: approver.key_id.to_owned(),
                owner: approver.owner.to_owned(),
            });
        }
    }
    if approving_token == publisher.token_id {
        return Err(SelfApproval::PublishingToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Publisher<'static> = Publisher {
        key_id: "k-alice",
        owner: Some("alice"),
        token_id: "t-ci",
    };

    fn bob(key_id: &'static str) -> Approver<'static> {
        Approver {
            key_id,
            owner: "bob",
        }
    }

    #[test]
    fn another_owners_key_with_another_token_approves() {
        assert_eq!(
            check_not_self_approval(ALICE, &[bob("k-bob")], "t-admin"),
            Ok(())
        );
    }

    #[test]
    fn the_publishing_key_never_approves() {
        let same_key = Approver {
            key_id: "k-alice",
            owner: "someone else",
        };
        assert_eq!(
            check_not_self_approval(ALICE, &[bob("k-bob"), same_key], "t-admin"),
            Err(SelfApproval::PublishingKey {
                key_id: "k-alice".into()
            })
        );
    }

    #[test]
    fn another_key_of_the_publisher_never_approves() {
        let second = Approver {
            key_id: "k-alice-2",
            owner: "alice",
        };
        assert_eq!(
            check_not_self_approval(ALICE, &[second], "t-admin"),
            Err(SelfApproval::SameOwner {
                key_id: "k-alice-2".into(),
                owner: "alice".into()
            })
        );
        // A publisher key no longer registered has no owner to compare.
        let unregistered = Publisher {
            owner: None,
            ..ALICE
        };
        assert_eq!(
            check_not_self_approval(unregistered, &[second], "t-admin"),
            Ok(())
        );
    }

    #[test]
    fn the_publishing_token_never_approves() {
        assert_eq!(
            check_not_self_approval(ALICE, &[bob("k-bob")], "t-ci"),
            Err(SelfApproval::PublishingToken)
        );
    }
}
