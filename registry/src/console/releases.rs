//! Release review for admins: the queue of pending releases, and one
//! release against its plugin's last approved release (capabilities,
//! limits against default and maximum, functions, dependencies, size,
//! signer, approvals k of n), with the exact `warden approve` command to
//! run (the admin's private key never enters the browser) and forms to
//! reject or yank with a reason. The page reloads itself when an event
//! about its release arrives.

use super::{
    admin_session, failure, form_session, live, not_found, page, refused_unless_admin, session,
    urlencode,
};
use crate::api::AppState;
use crate::domain::releases::{self, Release, ReleaseError};
use crate::domain::sessions::Session;
use crate::domain::status::Status;
use crate::domain::tokens::Permission;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value as Json;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/releases", get(queue_page))
        .route("/console/releases/{org}/{name}/{version}", get(review_page))
        .route(
            "/console/releases/{org}/{name}/{version}/reject",
            post(reject),
        )
        .route("/console/releases/{org}/{name}/{version}/yank", post(yank))
}

#[derive(Deserialize)]
struct QueueQuery {
    cursor: Option<String>,
}

/// The releases waiting for approval.
async fn queue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let session = match admin_session(&state, &headers, "review releases").await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let org = &session.caller.org;
    let listed = releases::list(
        &state.db,
        org,
        Some(Status::Pending),
        query.cursor.as_deref(),
        50,
    )
    .await;
    let found = match listed {
        Ok(found) => found,
        Err(ReleaseError::InvalidCursor) => {
            return Redirect::to("/console/releases").into_response();
        }
        Err(error) => return failure(&error.to_string()),
    };
    let body = html! {
        @if found.items.is_empty() {
            p { "No release is waiting for approval." }
        } @else {
            table {
                thead { tr { th scope="col" { "Release" } th scope="col" { "Publisher key" } th scope="col" { "Published" } } }
                tbody {
                    @for release in &found.items {
                        tr {
                            td { a href={ "/console/releases/" (release.name) "/" (release.version) } { (release.name) "@" (release.version) } }
                            td { code { (release.publisher_key) } }
                            td { (crate::events::rfc3339_ms(release.created_at)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &found.next_cursor {
            a href={ "/console/releases?cursor=" (urlencode(next)) } { "Next page" }
        }
    };
    page("Pending releases", Some(&session), body).into_response()
}

/// The session for a release page of `org`: another organization's
/// release is not found; a member who is not an admin is refused (403).
fn refused_unless_admin_of(session: &Session, org: &str) -> Option<Response> {
    if session.caller.require(Permission::Read, org).is_err() {
        return Some(not_found(session));
    }
    refused_unless_admin(session, "review releases")
}

async fn review_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name, version)): Path<(String, String, String)>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    if let Some(refused) = refused_unless_admin_of(&session, &org) {
        return refused;
    }
    review(&state, &session, &org, &name, &version, None).await
}

/// The review page, with `problem` (a refused decision) above it.
async fn review(
    state: &AppState,
    session: &Session,
    org: &str,
    name: &str,
    version: &str,
    problem: Option<(StatusCode, String)>,
) -> Response {
    // Read before the release: a change after this shows on the page or
    // arrives as an event.
    let after = match live::position(state, org).await {
        Ok(after) => after,
        Err(failed) => return failed,
    };
    let release = match releases::show(&state.releases(), org, name, version).await {
        Ok(release) => release,
        Err(ReleaseError::NotFound(_) | ReleaseError::InvalidName(_)) => {
            return not_found(session);
        }
        Err(error) => return failure(&error.to_string()),
    };
    let status = problem
        .as_ref()
        .map_or(StatusCode::OK, |(status, _)| *status);
    let title = format!("{}@{}", release.name, release.version);
    let body = html! {
        @if let Some((_, problem)) = &problem {
            p class="problem" role="alert" { (problem) }
        }
        (summary(&release))
        (capabilities(&release))
        (limits(&release))
        (functions(&release))
        (dependencies(&release))
        (approvals(&release))
        (decisions(&release, session))
    };
    let body = html! { (live::region(&format!("release {title}"), after)) (body) };
    (status, page(&title, Some(session), body)).into_response()
}

fn summary(release: &Release) -> Markup {
    let changes = &release.changes;
    html! {
        section aria-labelledby="summary" {
            h2 id="summary" { "Summary" }
            dl {
                dt { "Status" } dd id="status" { (release.status.as_str()) }
                @if let Some(reason) = &release.reason { dt { "Reason" } dd { (reason) } }
                dt { "Description" } dd { (release.description) }
                dt { "Compared with" }
                dd id="against" {
                    @match &changes.against {
                        Some(version) => { "the last approved version, " (version) }
                        None => { "nothing: no version of this plugin is approved yet" }
                    }
                }
                dt { "Published" } dd { (crate::events::rfc3339_ms(release.created_at)) " by " code { (release.published_by) } }
                dt { "Signer" }
                dd id="signer" {
                    code { (release.signer.key_id) }
                    ", " (release.signer.owner.as_deref().unwrap_or("unknown owner"))
                    @if release.signer.revoked { strong { " (revoked or not registered)" } } @else { " (registered, not revoked)" }
                }
                dt { "Component" }
                dd {
                    code { (release.component_digest) } ", " (bytes(release.component_size))
                    @if let Some(before) = changes.previous_size {
                        " (" (signed(release.component_size - before)) " bytes against " (bytes(before)) ")"
                    }
                }
                dt { "Statement digest" } dd { code { (release.statement_digest) } }
            }
        }
    }
}

fn capabilities(release: &Release) -> Markup {
    let diff = &release.diff;
    html! {
        section aria-labelledby="capabilities" {
            h2 id="capabilities" { "Capabilities" }
            @if release.requested_capabilities.is_empty() {
                p { "None requested." }
            } @else {
                ul id="capabilities-requested" {
                    @for capability in &release.requested_capabilities {
                        li {
                            code { (capability) }
                            @if diff.against.is_some() && diff.added.contains(capability) { " " strong class="added" { "added" } }
                        }
                    }
                }
            }
            @if !diff.removed.is_empty() {
                p { "No longer requested:" }
                ul id="capabilities-removed" { @for capability in &diff.removed { li { code { (capability) } } } }
            }
        }
    }
}

/// One row per limit: requested, what the compared version was granted,
/// the default and this server's maximum.
fn limits(release: &Release) -> Markup {
    let as_map = |limits: &warden_host::Limits| match serde_json::to_value(limits) {
        Ok(Json::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let requested = as_map(&release.requested_limits);
    let default = as_map(&release.default_limits);
    let maxima = as_map(&release.limit_maxima);
    let previous = release.previous_limits.as_ref().map(as_map);
    let number =
        |map: &serde_json::Map<String, Json>, key: &str| map.get(key).and_then(Json::as_u64);
    html! {
        section aria-labelledby="limits" {
            h2 id="limits" { "Limits" }
            table id="limits-table" {
                thead {
                    tr {
                        th scope="col" { "Limit" } th scope="col" { "Requested" }
                        th scope="col" { "Granted to " (release.changes.against.as_deref().unwrap_or("(none)")) }
                        th scope="col" { "Default" } th scope="col" { "Maximum" } th scope="col" { "Note" }
                    }
                }
                tbody {
                    @for (key, value) in &requested {
                        @let now = value.as_u64().unwrap_or_default();
                        @let before = previous.as_ref().and_then(|p| number(p, key)).or_else(|| number(&default, key));
                        @let max = number(&maxima, key);
                        tr data-limit=(key) {
                            th scope="row" { (key) }
                            td { (now) }
                            td { @match previous.as_ref().and_then(|p| number(p, key)) { Some(n) => { (n) } None => { "—" } } }
                            td { @match number(&default, key) { Some(n) => { (n) } None => { "—" } } }
                            td { @match max { Some(n) => { (n) } None => { "—" } } }
                            td class="note" {
                                @if max.is_some_and(|max| now > max) { strong { "above the maximum" } }
                                @else if before.is_some_and(|before| now > before) { strong { "raised" } }
                                @else if before.is_some_and(|before| now < before) { "lowered" }
                            }
                        }
                    }
                }
            }
            p { "Timeouts are in milliseconds, sizes in bytes." }
        }
    }
}

fn functions(release: &Release) -> Markup {
    let changes = &release.changes;
    html! {
        section aria-labelledby="functions" {
            h2 id="functions" { "Functions" }
            @if changes.breaks_without_major_bump {
                p class="problem" id="breaking" role="alert" {
                    "A function was removed or changed without a major version bump: callers asking for a version compatible with "
                    (changes.against.as_deref().unwrap_or_default()) " can break."
                }
            }
            ul id="functions-all" {
                @for function in &release.functions {
                    li { code { (function.name) ": " (function.signature) } }
                }
            }
            @if changes.against.is_some() {
                @if !changes.functions_added.is_empty() {
                    h3 { "Added" }
                    ul id="functions-added" { @for name in &changes.functions_added { li { code { (name) } } } }
                }
                @if !changes.functions_removed.is_empty() {
                    h3 { "Removed" }
                    ul id="functions-removed" { @for name in &changes.functions_removed { li { code { (name) } } } }
                }
                @if !changes.functions_changed.is_empty() {
                    h3 { "Changed" }
                    ul id="functions-changed" {
                        @for change in &changes.functions_changed {
                            li { code { (change.name) } ": was " code { (change.was) } ", now " code { (change.now) } }
                        }
                    }
                }
            }
        }
    }
}

fn dependencies(release: &Release) -> Markup {
    let changes = &release.changes;
    html! {
        section aria-labelledby="dependencies" {
            h2 id="dependencies" { "Dependencies" }
            @if release.dependencies.is_empty() {
                p { "None." }
            } @else {
                ul id="dependencies-all" {
                    @for (name, requirement) in &release.dependencies {
                        li {
                            code { (name) " " (requirement) }
                            @if changes.against.is_some() && changes.dependencies_added.contains_key(name) { " " strong { "added" } }
                        }
                    }
                }
            }
            @if !changes.dependencies_removed.is_empty() {
                p { "No longer declared:" }
                ul id="dependencies-removed" {
                    @for (name, requirement) in &changes.dependencies_removed { li { code { (name) " " (requirement) } } }
                }
            }
            @if !changes.dependencies_moved.is_empty() {
                p { "Requirement changed:" }
                ul id="dependencies-moved" {
                    @for moved in &changes.dependencies_moved {
                        li { code { (moved.name) } ": " code { (moved.from) } " to " code { (moved.to) } }
                    }
                }
            }
        }
    }
}

fn approvals(release: &Release) -> Markup {
    html! {
        section aria-labelledby="approvals" {
            h2 id="approvals" { "Approvals" }
            p id="approval-count" {
                (release.approvals.len()) " of " (release.approvals_required) " required"
            }
            @if !release.approvals.is_empty() {
                ul {
                    @for approval in &release.approvals {
                        li {
                            code { (approval.key_id) } ", " (approval.owner) ", "
                            (crate::events::rfc3339_ms(approval.created_at))
                        }
                    }
                }
            }
        }
    }
}

/// The command an admin runs to approve exactly what was requested.
fn approve_command(release: &Release) -> String {
    let mut command = format!(
        "warden approve {}@{} --key <your-admin-key>",
        release.name, release.version
    );
    if release.requested_capabilities.is_empty() {
        command.push_str(" --grant-none");
    }
    for capability in &release.requested_capabilities {
        command.push_str(" --grant ");
        command.push_str(&shell_quoted(capability));
    }
    command
}

/// `text` as one word for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/=@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn decisions(release: &Release, session: &Session) -> Markup {
    let (org_name, version) = (&release.name, &release.version);
    let pending = release.status == Status::Pending;
    let yankable = pending || release.status == Status::Approved;
    html! {
        @if pending {
            section aria-labelledby="approve" {
                h2 id="approve" { "Approve" }
                p { "Approving signs with your admin key, which stays on your machine. Run:" }
                pre { code id="approve-command" { (approve_command(release)) } }
                p { "This page updates when the approval lands." }
            }
        }
        @if pending {
            (decision_form("reject", "Reject", org_name, version, session))
        }
        @if yankable {
            (decision_form("yank", "Yank", org_name, version, session))
        }
    }
}

fn decision_form(
    action: &str,
    label: &str,
    org_name: &str,
    version: &str,
    session: &Session,
) -> Markup {
    let id = format!("{action}-reason");
    html! {
        section aria-labelledby={ (action) "-heading" } {
            h2 id={ (action) "-heading" } { (label) }
            form method="post" action={ "/console/releases/" (org_name) "/" (version) "/" (action) } {
                input type="hidden" name="csrf" value=(session.csrf);
                label for=(id) { "Reason (for the publisher and the audit log)" }
                textarea id=(id) name="reason" required maxlength="2000" rows="2" {}
                button type="submit" { (label) }
            }
        }
    }
}

#[derive(Deserialize)]
struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn reject(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<(String, String, String)>,
    Form(form): Form<Decision>,
) -> Response {
    decide(state, headers, path, form, Status::Rejected).await
}

async fn yank(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<(String, String, String)>,
    Form(form): Form<Decision>,
) -> Response {
    decide(state, headers, path, form, Status::Yanked).await
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name, version)): Path<(String, String, String)>,
    form: Decision,
    to: Status,
) -> Response {
    let session = match form_session(&state, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if let Some(refused) = refused_unless_admin_of(&session, &org) {
        return refused;
    }
    let cx = state.releases();
    let decided = match to {
        Status::Yanked => {
            releases::yank(&cx, &session.caller, &org, &name, &version, &form.reason).await
        }
        _ => releases::reject(&cx, &session.caller, &org, &name, &version, &form.reason).await,
    };
    match decided {
        Ok(release) => {
            if to == Status::Yanked {
                state
                    .metrics
                    .forget_release(&release.name, &release.version);
            }
            Redirect::to(&format!("/console/releases/{org}/{name}/{version}")).into_response()
        }
        Err(ReleaseError::NotFound(_) | ReleaseError::InvalidName(_)) => not_found(&session),
        Err(error @ (ReleaseError::Db(_) | ReleaseError::Internal(_))) => {
            failure(&error.to_string())
        }
        Err(error) => {
            review(
                &state,
                &session,
                &org,
                &name,
                &version,
                Some((StatusCode::UNPROCESSABLE_ENTITY, error.to_string())),
            )
            .await
        }
    }
}

fn bytes(n: i64) -> String {
    format!("{n} bytes")
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quoted;

    #[test]
    fn a_capability_is_one_shell_word() {
        assert_eq!(shell_quoted("http:api.example.com"), "http:api.example.com");
        assert_eq!(shell_quoted("http:*.example.com"), "'http:*.example.com'");
        assert_eq!(shell_quoted("a'b"), r"'a'\''b'");
    }
}
