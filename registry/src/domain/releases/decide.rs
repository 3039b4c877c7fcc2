//! Deciding on a release: approvals by distinct admin keys (which must agree
//! and must not come from the publisher), rejection and yanking.

use super::{
    MAX_REASON_CHARS, Release, ReleaseContext, ReleaseError, check_transition, existing, internal,
    reference, show,
};
use crate::audit::{Action, Change};
use crate::db::{is_duplicate, now_ms};
use crate::domain::approval::{Approver, Publisher, check_not_self_approval};
use crate::domain::keys::{self, KeyKind, SignedStatement, verify_signed};
use crate::domain::names::is_plain_text;
use crate::domain::status::Status;
use crate::domain::tokens::Caller;
use serde_json::json;
use warden_host::{APPROVAL_PAYLOAD_TYPE, ApprovalFault, ApprovalStatement, Envelope};

/// Records an approval of `org/name@version` signed by admin keys of the
/// org. The release becomes approved once approvals from
/// [`ReleaseContext::approvals_required`] distinct admin keys agree on the
/// same grants. The approval statement must be for this release's statement,
/// grant only what it requests, and come from neither the publishing key,
/// another key of the same owner, nor the publishing token.
pub async fn approve(
    cx: &ReleaseContext<'_>,
    caller: &Caller,
    org: &str,
    name: &str,
    version: &str,
    envelope: &Envelope,
) -> Result<Release, ReleaseError> {
    let row = existing(cx.db, org, name, version).await?;
    row.check_may_become(Status::Approved)?;
    let SignedStatement { verified, signers } =
        verify_signed(cx.db, org, KeyKind::Admin, APPROVAL_PAYLOAD_TYPE, envelope).await?;
    let statement: ApprovalStatement = serde_json::from_slice(&verified.payload)
        .map_err(|e| ReleaseError::InvalidStatement(format!("approval statement: {e}")))?;
    let reference = reference(org, name, version);
    statement
        .check_for(&reference, &row.statement_digest, &row.requested)
        .map_err(|fault| match fault {
            fault @ ApprovalFault::OtherRelease { .. } => {
                ReleaseError::StatementMismatch(fault.to_string())
            }
            ApprovalFault::Unrequested(extra) => ReleaseError::GrantExceedsRequest(extra),
            fault => ReleaseError::InvalidCapabilities(fault.to_string()),
        })?;
    let above = statement.limits.above(cx.limit_maxima);
    if !above.is_empty() {
        return Err(ReleaseError::LimitsAboveMaxima(above));
    }
    let publisher_owner = keys::owner(cx.db, org, &row.publisher_key).await?;
    let approvers: Vec<Approver<'_>> = signers
        .iter()
        .map(|signer| Approver {
            key_id: &signer.key_id,
            owner: &signer.owner,
        })
        .collect();
    let publisher = Publisher {
        key_id: &row.publisher_key,
        owner: publisher_owner.as_deref(),
        token_id: &row.published_by,
    };
    check_not_self_approval(publisher, &approvers, &caller.token_id)?;
    if let Some(earlier) = &row.granted
        && !statement.agrees_with(&earlier.capabilities, &earlier.limits)
    {
        return Err(ReleaseError::ApprovalMismatch);
    }

    let granted_capabilities = serde_json::to_string(&statement.capabilities).map_err(internal)?;
    let granted_limits = serde_json::to_string(&statement.limits).map_err(internal)?;
    let envelope_json = serde_json::to_string(envelope).map_err(internal)?;
    let mut change = Change::begin(cx.db, org).await?;
    // Re-read inside the transaction: another admin may have decided meanwhile.
    let status = status_in(&mut change, org, name, version).await?;
    check_transition(&reference, status, Status::Approved)?;
    let now = now_ms();
    for signer in &signers {
        let inserted = sqlx::query(
            "INSERT INTO approvals (org, name, version, key_id, envelope, approved_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org)
        .bind(name)
        .bind(version)
        .bind(&signer.key_id)
        .bind(&envelope_json)
        .bind(&caller.token_id)
        .bind(now)
        .execute(change.tx())
        .await;
        match inserted {
            Err(e) if is_duplicate(&e) => {
                return Err(ReleaseError::AlreadyApprovedByKey {
                    key_id: signer.key_id.clone(),
                    reference,
                });
            }
            other => other?,
        };
    }
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT key_id) FROM approvals WHERE org = $1 AND name = $2 AND version = $3",
    )
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_one(change.tx())
    .await?;
    let approved = count >= i64::from(cx.approvals_required);
    let now_status = if approved {
        Status::Approved
    } else {
        Status::Pending
    };
    sqlx::query(
        "UPDATE releases SET granted_capabilities = $1, granted_limits = $2, status = $3, decided_at = $4
         WHERE org = $5 AND name = $6 AND version = $7",
    )
    .bind(&granted_capabilities)
    .bind(&granted_limits)
    .bind(now_status.as_str())
    .bind(approved.then_some(now))
    .bind(org)
    .bind(name)
    .bind(version)
    .execute(change.tx())
    .await?;
    change
        .commit(
            &caller.actor(),
            Action::ReleaseApprove,
            &reference,
            json!({
                "keys": signers.iter().map(|s| s.key_id.clone()).collect::<Vec<_>>(),
                "capabilities": statement.capabilities,
                "approvals": count,
                "required": cx.approvals_required,
                "approved": approved,
            }),
        )
        .await?;
    // After the commit, like the publish's: the referrer is the record's OCI view.
    // One referrer for the envelope, recorded in each signer's row.
    for signer in &signers {
        let written = super::referrers::write_referrer(
            cx.db,
            cx.artifacts,
            super::referrers::Referrer::Approval,
            (org, name, version),
            Some(&signer.key_id),
            &row.manifest_digest,
            &envelope_json,
        )
        .await;
        if let Err(e) = written {
            tracing::error!(release = %reference, error = %e,
                "approved, but writing its approval referrer failed (repaired in the background)");
        }
    }
    show(cx, org, name, version).await
}

/// Rejects a pending release, with a reason for the publisher and the audit log.
pub async fn reject(
    cx: &ReleaseContext<'_>,
    caller: &Caller,
    org: &str,
    name: &str,
    version: &str,
    reason: &str,
) -> Result<Release, ReleaseError> {
    decide(cx, caller, org, name, version, reason, Status::Rejected).await
}

/// Yanks a pending or approved release: it never runs again.
pub async fn yank(
    cx: &ReleaseContext<'_>,
    caller: &Caller,
    org: &str,
    name: &str,
    version: &str,
    reason: &str,
) -> Result<Release, ReleaseError> {
    decide(cx, caller, org, name, version, reason, Status::Yanked).await
}

async fn decide(
    cx: &ReleaseContext<'_>,
    caller: &Caller,
    org: &str,
    name: &str,
    version: &str,
    reason: &str,
    to: Status,
) -> Result<Release, ReleaseError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || !is_plain_text(reason) {
        return Err(ReleaseError::InvalidReason);
    }
    let reference = reference(org, name, version);
    let mut change = Change::begin(cx.db, org).await?;
    let status = status_in(&mut change, org, name, version).await?;
    check_transition(&reference, status, to)?;
    sqlx::query(
        "UPDATE releases SET status = $1, reason = $2, decided_at = $3 WHERE org = $4 AND name = $5 AND version = $6",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(org)
    .bind(name)
    .bind(version)
    .execute(change.tx())
    .await?;
    let action = match to {
        Status::Rejected => Action::ReleaseReject,
        _ => Action::ReleaseYank,
    };
    change
        .commit(
            &caller.actor(),
            action,
            &reference,
            json!({ "reason": reason, "was": status.as_str() }),
        )
        .await?;
    show(cx, org, name, version).await
}

/// The status of a release, read within `change` (so that no other decision
/// slips in between the check and the write).
async fn status_in(
    change: &mut Change,
    org: &str,
    name: &str,
    version: &str,
) -> Result<Status, ReleaseError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT status FROM releases WHERE org = $1 AND name = $2 AND version = $3")
            .bind(org)
            .bind(name)
            .bind(version)
            .fetch_optional(change.tx())
            .await?;
    let (status,) = row.ok_or_else(|| ReleaseError::NotFound(reference(org, name, version)))?;
    Status::parse(&status).map_err(internal)
}
