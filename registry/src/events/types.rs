//! The event types: which audit action each stands for, what it means, and
//! the small typed payload it carries. A payload is read from the audit
//! entry's details through its own type, so only the fields listed here
//! ever leave the server in an event: never a secret's value, a token, a
//! configuration value.

use crate::audit::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $data:ty, $description:literal), )*) => {
        /// What happened, as an event's `type` says it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every event type.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// Its name, e.g. `release.published`.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// One sentence for people choosing what to subscribe to.
            pub fn description(self) -> &'static str {
                match self { $(EventType::$variant => $description,)* }
            }

            /// Its payload's JSON Schema.
            pub fn data_schema(self) -> RefOr<Schema> {
                match self { $(EventType::$variant => <$data as utoipa::PartialSchema>::schema(),)* }
            }

            /// The payload of an entry of this type: its details read
            /// through the payload's type (unknown fields dropped).
            fn data(self, details: Json) -> Json {
                match self {
                    $(EventType::$variant => serde_json::from_value::<$data>(details)
                        .ok()
                        .and_then(|data| serde_json::to_value(data).ok())
                        .unwrap_or_else(|| Json::Object(Default::default())),)*
                }
            }
        }

        /// Every payload schema, for `/openapi.json`.
        pub fn data_schemas() -> Vec<(String, RefOr<Schema>)> {
            let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
            $(
                let name = <$data as ToSchema>::name().into_owned();
                if !schemas.iter().any(|(known, _)| *known == name) {
                    schemas.push((name, <$data as utoipa::PartialSchema>::schema()));
                }
            )*
            schemas
        }
    };
}

event_types! {
    /// `release.publish`.
    ReleasePublished = ("release.published", PublishedData,
        "A release was published: signed, checked, and waiting for approval."),
    /// `release.approve` short of the approvals required.
    ApprovalRecorded = ("release.approval_recorded", ApprovalData,
        "An admin approved a release; more approvals are needed before it runs."),
    /// `release.approve` that reached the approvals required.
    ReleaseApproved = ("release.approved", ApprovalData,
        "A release has the approvals it needs (k of n) and runs from now on."),
    /// `release.reject`.
    ReleaseRejected = ("release.rejected", DecisionData,
        "A pending release was rejected, with a reason."),
    /// `release.yank`.
    ReleaseYanked = ("release.yanked", DecisionData,
        "A release was yanked, with a reason: it never runs again."),
    /// `release.refused`.
    ReleaseRefused = ("release.refused", RefusalData,
        "The server refused to run a release it could not verify (tampering, a revoked key)."),
    /// `key.add`.
    KeyAdded = ("key.added", KeyAddedData,
        "A publisher or admin public key was registered."),
    /// `key.revoke`.
    KeyRevoked = ("key.revoked", EmptyData,
        "A key was revoked: what it signed no longer counts."),
    /// `token.create`.
    TokenCreated = ("token.created", TokenCreatedData,
        "An API token was created (its secret is never in an event)."),
    /// `token.revoke`.
    TokenRevoked = ("token.revoked", EmptyData,
        "An API token was revoked."),
    /// `plugin.config`.
    ConfigChanged = ("config.changed", ConfigChangedData,
        "A plugin's configuration was replaced (the keys, never the values)."),
    /// `secret.set`.
    SecretSet = ("secret.set", SecretData,
        "A plugin's secret was set (its name, never its value)."),
    /// `secret.removed`.
    SecretRemoved = ("secret.removed", SecretData,
        "A plugin's secret was removed."),
    /// `org.create`.
    OrgCreated = ("org.created", OrgCreatedData,
        "The organization was created."),
    /// `oci.manifest.put`.
    ManifestPushed = ("artifact.pushed", ManifestPushedData,
        "A manifest was pushed to the organization's registry repository."),
    /// `cache.rejected`.
    CacheRejected = ("cache.rejected", RefusalData,
        "A compiled-code cache entry failed its check and was discarded (a tampered file)."),
    /// `webhook.create`.
    WebhookCreated = ("webhook.created", WebhookChangeData,
        "A webhook endpoint was created (its URL's origin, never the path, query or secret)."),
    /// `webhook.update`.
    WebhookUpdated = ("webhook.updated", WebhookChangeData,
        "A webhook endpoint was changed, enabled or disabled by an admin."),
    /// `webhook.delete`.
    WebhookDeleted = ("webhook.deleted", EmptyData,
        "A webhook endpoint was removed."),
    /// `webhook.rotate`.
    WebhookSecretRotated = ("webhook.secret_rotated", WebhookRotatedData,
        "A webhook endpoint's signing secret was rotated; the old one signs beside it for 24 hours."),
    /// `webhook.disable`.
    WebhookDisabled = ("webhook.disabled", RefusalData,
        "The server disabled a webhook endpoint (it answered 410 Gone, or failed for 3 days)."),
    /// `webhook.replay`.
    WebhookReplayed = ("webhook.replayed", WebhookReplayData,
        "A webhook endpoint's deliveries were moved back to deliver every event since a time again."),
    /// `webhook.redeliver`.
    WebhookRedeliveryRequested = ("webhook.redelivery_requested", WebhookRedeliveryData,
        "One event's redelivery to a webhook endpoint was asked for."),
}

impl EventType {
    /// The type of an audit entry of `action` with `details`: one for every
    /// action (the match is exhaustive).
    pub fn of_action(action: Action, details: &Json) -> EventType {
        match action {
            Action::ReleasePublish => EventType::ReleasePublished,
            Action::ReleaseApprove if details["approved"] == Json::Bool(true) => {
                EventType::ReleaseApproved
            }
            Action::ReleaseApprove => EventType::ApprovalRecorded,
            Action::ReleaseReject => EventType::ReleaseRejected,
            Action::ReleaseYank => EventType::ReleaseYanked,
            Action::ReleaseRefused => EventType::ReleaseRefused,
            Action::CacheRejected => EventType::CacheRejected,
            Action::KeyAdd => EventType::KeyAdded,
            Action::KeyRevoke => EventType::KeyRevoked,
            Action::TokenCreate => EventType::TokenCreated,
            Action::TokenRevoke => EventType::TokenRevoked,
            Action::PluginConfig => EventType::ConfigChanged,
            Action::SecretSet => EventType::SecretSet,
            Action::SecretRemoved => EventType::SecretRemoved,
            Action::OrgCreate => EventType::OrgCreated,
            Action::ManifestPut => EventType::ManifestPushed,
            Action::WebhookCreate => EventType::WebhookCreated,
            Action::WebhookUpdate => EventType::WebhookUpdated,
            Action::WebhookDelete => EventType::WebhookDeleted,
            Action::WebhookRotate => EventType::WebhookSecretRotated,
            Action::WebhookDisable => EventType::WebhookDisabled,
            Action::WebhookReplay => EventType::WebhookReplayed,
            Action::WebhookRedeliver => EventType::WebhookRedeliveryRequested,
        }
    }

    /// Whether only the organization's admins see events of this type:
    /// those about what the rest of the API shows admins alone (tokens,
    /// secrets, configuration, the server's refusals). Readers see
    /// releases, keys and pushes, as the catalog and keys show them.
    pub fn for_admins_only(self) -> bool {
        match self {
            EventType::ReleasePublished
            | EventType::ApprovalRecorded
            | EventType::ReleaseApproved
            | EventType::ReleaseRejected
            | EventType::ReleaseYanked
            | EventType::KeyAdded
            | EventType::KeyRevoked
            | EventType::OrgCreated
            | EventType::ManifestPushed => false,
            EventType::ReleaseRefused
            | EventType::CacheRejected
            | EventType::WebhookCreated
            | EventType::WebhookUpdated
            | EventType::WebhookDeleted
            | EventType::WebhookSecretRotated
            | EventType::WebhookDisabled
            | EventType::WebhookReplayed
            | EventType::WebhookRedeliveryRequested
            | EventType::TokenCreated
            | EventType::TokenRevoked
            | EventType::ConfigChanged
            | EventType::SecretSet
            | EventType::SecretRemoved => true,
        }
    }

    /// The payload of an entry of this type.
    pub fn payload(self, details: Json) -> Json {
        self.data(details)
    }
}

/// `release.published`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishedData {
    /// `sha256:` of the component.
    pub component: String,
    /// `sha256:` of the OCI manifest.
    pub manifest: String,
    /// `sha256:` of the signed release statement.
    pub statement: String,
    /// The key id that signed it.
    pub publisher_key: String,
    /// The capabilities it requests.
    pub capabilities: Vec<String>,
}

/// `release.approval_recorded`, `release.approved`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalData {
    /// The admin key ids that signed this approval.
    pub keys: Vec<String>,
    /// The capabilities granted.
    pub capabilities: Vec<String>,
    /// Approvals by distinct keys so far.
    pub approvals: i64,
    /// Approvals needed.
    pub required: i64,
}

/// `release.rejected`, `release.yanked`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionData {
    /// Why, as the admin wrote it.
    pub reason: String,
    /// The status before: `pending` or `approved`.
    pub was: String,
}

/// `release.refused`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefusalData {
    /// Why the server refused to run it.
    pub reason: String,
}

/// `key.added`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyAddedData {
    /// `publisher` or `admin`.
    pub kind: String,
    /// Who holds it.
    pub owner: String,
    /// The public key.
    pub public_key: String,
}

/// A payload with nothing to say beyond the subject.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmptyData {}

/// `token.created`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreatedData {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// When it expires (Unix ms), if it does.
    pub expires_at: Option<i64>,
}

/// `config.changed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigChangedData {
    /// The keys the configuration has now.
    pub keys: Vec<String>,
}

/// `secret.set`, `secret.removed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretData {
    /// The secret's name.
    pub name: String,
}

/// `org.created`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgCreatedData {
    /// Whether it is the operator organization.
    #[serde(default)]
    pub operator: bool,
}

/// `artifact.pushed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ManifestPushedData {
    /// `sha256:` of the manifest.
    pub digest: String,
    /// The tag it was pushed under, if any.
    pub tag: Option<String>,
}

/// `webhook.created`, `webhook.updated`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookChangeData {
    /// The URL's origin (scheme, host, port), when it was set.
    pub origin: Option<String>,
    /// The event types, when they were set.
    pub events: Option<Vec<String>>,
    /// Whether it was enabled or disabled, when that was set.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `webhook.secret_rotated`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookRotatedData {
    /// Until when the previous secret still signs (Unix ms).
    pub previous_until: i64,
}

/// `webhook.replayed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookReplayData {
    /// Events committed at or after this time (Unix ms) are delivered again.
    pub since: i64,
    /// The endpoint's cursor now.
    pub cursor: String,
}

/// `webhook.redelivery_requested`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookRedeliveryData {
    /// The event to deliver again.
    pub event: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique() {
        for kind in EventType::ALL {
            assert!(!kind.description().is_empty());
        }
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn an_approval_is_approved_only_when_it_reached_the_count() {
        let reached = json!({ "approved": true });
        let short = json!({ "approved": false });
        assert_eq!(
            EventType::of_action(Action::ReleaseApprove, &reached),
            EventType::ReleaseApproved
        );
        assert_eq!(
            EventType::of_action(Action::ReleaseApprove, &short),
            EventType::ApprovalRecorded
        );
        // Every action is an event of some type, and every type but the
        // approval's two comes from one action.
        let mut seen: Vec<EventType> = Action::ALL
            .iter()
            .map(|action| EventType::of_action(*action, &reached))
            .collect();
        seen.push(EventType::ApprovalRecorded);
        for kind in EventType::ALL {
            assert!(seen.contains(kind), "{}", kind.name());
        }
    }

    #[test]
    fn a_payload_carries_only_its_fields() {
        let details = json!({
            "name": "TOKEN",
            "value": "hunter2",
            "admin_token": "t-1",
        });
        assert_eq!(
            EventType::SecretSet.payload(details),
            json!({ "name": "TOKEN" })
        );
        let org = json!({ "operator": true, "admin_token": "t-1" });
        assert_eq!(
            EventType::OrgCreated.payload(org),
            json!({ "operator": true })
        );
        // Details that do not fit the type: an empty payload, not a guess.
        assert_eq!(
            EventType::ReleasePublished.payload(json!({ "component": 1 })),
            json!({})
        );
    }
}
