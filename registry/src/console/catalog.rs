//! The catalog (search and pages) and a plugin's page.

use super::{failure, forbidden, not_found, page, session, urlencode};
use crate::api::AppState;
use crate::domain::tokens::Permission;
use crate::domain::{catalog, dependencies};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;
use serde::Deserialize;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/catalog", get(catalog_page))
        .route("/console/plugins/{org}/{name}", get(plugin_page))
}

#[derive(Deserialize)]
struct CatalogQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

async fn catalog_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let org = session.caller.org.clone();
    if session.caller.require(Permission::Read, &org).is_err() {
        return forbidden(&session);
    }
    let listed = catalog::list(&state.db, &org, &query.q, query.cursor.as_deref(), 50).await;
    let (found, problem) = match listed {
        Ok(found) => (Some(found), None),
        Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
        Err(error) => (None, Some(error.to_string())),
    };
    let body = html! {
        form method="get" action="/console/catalog" role="search" {
            label for="q" { "Search plugins" }
            input id="q" name="q" type="search" value=(query.q);
            button type="submit" { "Search" }
        }
        @if let Some(problem) = problem {
            p class="problem" role="alert" { (problem) }
        }
        @if let Some(found) = &found {
            @if found.items.is_empty() {
                p { "No plugins." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Plugin" } th scope="col" { "Latest approved" } th scope="col" { "Description" } } }
                    tbody {
                        @for plugin in &found.items {
                            tr {
                                td { a href={ "/console/plugins/" (plugin.name) } { (plugin.name) } }
                                td { (plugin.latest_approved.as_deref().unwrap_or("none")) }
                                td { (plugin.description) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &found.next_cursor {
                a href={ "/console/catalog?q=" (urlencode(&query.q)) "&cursor=" (urlencode(next)) } { "Next page" }
            }
        }
    };
    page("Catalog", Some(&session), body).into_response()
}

/// A plugin: its versions with their status, the functions (WIT
/// signatures) of its newest approved release, and, for admins, its
/// configuration keys (never the values).
async fn plugin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    // Another organization's plugin is not found, whether or not it exists.
    if session.caller.require(Permission::Read, &org).is_err() {
        return not_found(&session);
    }
    let detail = match catalog::detail(&state.db, &org, &name).await {
        Ok(detail) => detail,
        Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
        Err(_) => return not_found(&session),
    };
    let admin = session.caller.require(Permission::Administer, &org).is_ok();
    let may_invoke = session.caller.require(Permission::Invoke, &org).is_ok();
    let calls = state.metrics.function_counts(&format!("{org}/{name}"));
    // The newest approved release's dependencies, resolved as a call
    // would resolve them now.
    let resolved = match &detail.functions_of {
        None => None,
        Some(_) => Some(
            match dependencies::resolve_dependencies(&state.db, &state.solver, &org, &name, None)
                .await
            {
                Ok(resolution) => Ok(resolution.releases.into_iter().skip(1).collect::<Vec<_>>()),
                Err(dependencies::DependencyError::Db(error)) => {
                    return failure(&error.to_string());
                }
                Err(error) => Err(error.to_string()),
            },
        ),
    };
    let config_keys: Option<Vec<String>> = if admin {
        match catalog::config(&state.db, &org, &name).await {
            Ok(config) => Some(config.values.into_keys().collect()),
            Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
            Err(_) => Some(Vec::new()),
        }
    } else {
        None
    };
    let body = html! {
        p { (detail.description) }
        h2 { "Versions" }
        table {
            thead { tr { th scope="col" { "Version" } th scope="col" { "Status" } th scope="col" { "Published" } } }
            tbody {
                @for version in &detail.versions {
                    tr {
                        td { (version.version) }
                        td { (version.status.as_str()) }
                        td { (crate::events::rfc3339_ms(version.created_at)) }
                    }
                }
            }
        }
        h2 {
            "Functions"
            @if let Some(of) = &detail.functions_of { " of " (of) }
        }
        @if detail.functions.is_empty() {
            p { "None exported." }
        } @else {
            table id="functions" {
                caption { "Calls and errors: counted by this server since it started (for the 256 releases invoked most lately)" }
                thead {
                    tr {
                        th scope="col" { "Function" } th scope="col" { "Signature" }
                        th scope="col" { "Calls" } th scope="col" { "Errors" }
                        @if may_invoke { th scope="col" { "Try" } }
                    }
                }
                tbody {
                    @for function in &detail.functions {
                        @let counts = calls.get(&function.name).copied().unwrap_or_default();
                        tr data-function=(function.name) {
                            td { code { (function.name) } }
                            td {
                                code { (function.signature) }
                                @if let Some(why) = &function.not_invocable { " (not invocable: " (why) ")" }
                            }
                            td class="calls" { (counts.invocations) }
                            td class="errors" { (counts.errors) }
                            @if may_invoke {
                                td {
                                    @if function.not_invocable.is_none() {
                                        a href={ "/console/plugins/" (org) "/" (name) "/try/" (urlencode(&function.name)) } { "Try " (function.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(resolved) = &resolved {
            h2 { "Dependencies, as they resolve now" }
            @match resolved {
                Ok(releases) if releases.is_empty() => { p { "None." } }
                Ok(releases) => {
                    ul id="dependencies" {
                        @for release in releases {
                            li { a href={ "/console/plugins/" (release.name) } { (release.name) } " " (release.version) }
                        }
                    }
                }
                Err(problem) => { p class="problem" id="dependencies" { "They do not resolve now: " (problem) } }
            }
        }
        @if let Some(keys) = &config_keys {
            h2 { "Configuration keys" }
            @if keys.is_empty() {
                p { "None set." }
            } @else {
                ul { @for key in keys { li { code { (key) } } } }
            }
        }
    };
    page(&detail.name, Some(&session), body).into_response()
}
