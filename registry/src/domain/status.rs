//! Where a release stands, and the moves between those states: the release
//! life cycle in one type.

use serde::{Deserialize, Serialize};

/// Where a release stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Published, waiting for approvals.
    Pending,
    /// Approved by enough admin keys: may run.
    Approved,
    /// Refused by an admin.
    Rejected,
    /// Withdrawn: never runs again.
    Yanked,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Yanked => "yanked",
        }
    }

    /// From the stored form.
    pub fn parse(text: &str) -> Result<Status, String> {
        match text {
            "pending" => Ok(Status::Pending),
            "approved" => Ok(Status::Approved),
            "rejected" => Ok(Status::Rejected),
            "yanked" => Ok(Status::Yanked),
            other => Err(format!("unknown release status {other:?}")),
        }
    }

    /// Whether a release in this state may move to `next`: a pending release
    /// is approved, rejected or yanked; an approved one can only be yanked;
    /// rejected and yanked are final.
    pub fn may_become(self, next: Status) -> bool {
        matches!(
            (self, next),
            (
                Status::Pending,
                Status::Approved | Status::Rejected | Status::Yanked
            ) | (Status::Approved, Status::Yanked)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 4] = [
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Yanked,
    ];

    #[test]
    fn the_release_life_cycle() {
        let allowed: Vec<(Status, Status)> = ALL
            .iter()
            .flat_map(|&from| ALL.iter().map(move |&to| (from, to)))
            .filter(|&(from, to)| from.may_become(to))
            .collect();
        assert_eq!(
            allowed,
            [
                (Status::Pending, Status::Approved),
                (Status::Pending, Status::Rejected),
                (Status::Pending, Status::Yanked),
                (Status::Approved, Status::Yanked),
            ]
        );
    }

    #[test]
    fn statuses_round_trip_through_their_stored_form() {
        for status in ALL {
            assert_eq!(Status::parse(status.as_str()), Ok(status));
        }
        assert!(Status::parse("approved ").is_err());
        assert!(Status::parse("APPROVED").is_err());
    }
}
