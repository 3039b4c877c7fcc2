//! Trying a function (invokers and admins): a form for its arguments, as
//! JSON text that works without scripts and, with them, as fields
//! generated from the function's JSON Schema; the call goes through the
//! same invoke path as `POST /v1/plugins/{org}/{name}/invoke/{function}`
//! and the page shows the result or the error, with the release that ran,
//! what it used and what it logged.

use super::{failure, form_session, not_found, page, session};
use crate::api::{ApiError, AppState, InvokeResponse, invocation_answer};
use crate::domain::catalog;
use crate::domain::sessions::Session;
use crate::domain::tokens::Permission;
use crate::invocation::Call;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value as Json;
use warden_host::FunctionInfo;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/console/plugins/{org}/{name}/try/{function}",
        get(try_page).post(try_call),
    )
}

/// What a call ended with.
enum Outcome {
    Answered(Box<InvokeResponse>),
    Failed(ApiError),
}

/// The function to try, or the page that says why not: another
/// organization's plugin or an unknown function is not found; a member
/// who may not invoke is refused.
async fn function_of(
    state: &AppState,
    session: &Session,
    org: &str,
    name: &str,
    function: &str,
) -> Result<FunctionInfo, Response> {
    if session.caller.require(Permission::Read, org).is_err() {
        return Err(not_found(session));
    }
    if session.caller.require(Permission::Invoke, org).is_err() {
        return Err((
            StatusCode::FORBIDDEN,
            page(
                "Not allowed",
                Some(session),
                html! { p { "Your token's role may not invoke plugins." } },
            ),
        )
            .into_response());
    }
    let detail = match catalog::detail(&state.db, org, name).await {
        Ok(detail) => detail,
        Err(catalog::CatalogError::Db(error)) => return Err(failure(&error.to_string())),
        Err(_) => return Err(not_found(session)),
    };
    detail
        .functions
        .into_iter()
        .find(|f| f.name == function)
        .ok_or_else(|| not_found(session))
}

async fn try_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name, function)): Path<(String, String, String)>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let function = match function_of(&state, &session, &org, &name, &function).await {
        Ok(function) => function,
        Err(refused) => return refused,
    };
    let title = format!("Try {org}/{name} {}", function.name);
    let body = form(&session, &org, &name, &function, "", "");
    page(&title, Some(&session), body).into_response()
}

#[derive(Deserialize)]
struct TryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    args: String,
    #[serde(default)]
    version: String,
}

async fn try_call(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name, function)): Path<(String, String, String)>,
    Form(sent): Form<TryForm>,
) -> Response {
    let session = match form_session(&state, &headers, &sent.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let info = match function_of(&state, &session, &org, &name, &function).await {
        Ok(function) => function,
        Err(refused) => return refused,
    };
    let args = if sent.args.trim().is_empty() {
        Ok(Json::Array(Vec::new()))
    } else {
        serde_json::from_str::<Json>(&sent.args)
            .map_err(|error| format!("The arguments are not JSON: {error}"))
    };
    let version = Some(sent.version.trim()).filter(|v| !v.is_empty());
    let outcome = match args {
        Err(problem) => Outcome::Failed(ApiError::new(crate::api::ErrorCode::InvalidJson, problem)),
        Ok(args) => {
            let actor = session.caller.actor();
            let ran = state
                .invoker()
                .invoke(Call {
                    org: &org,
                    name: &name,
                    function: &function,
                    args,
                    requirement: version,
                    actor: &actor,
                })
                .await;
            match ran.map_err(ApiError::from).and_then(invocation_answer) {
                Ok(answer) => Outcome::Answered(Box::new(answer)),
                Err(error) => Outcome::Failed(error),
            }
        }
    };
    let status = match &outcome {
        Outcome::Answered(_) => StatusCode::OK,
        Outcome::Failed(error) => error.status(),
    };
    let title = format!("Try {org}/{name} {}", info.name);
    let body = html! {
        (form(&session, &org, &name, &info, &sent.args, &sent.version))
        (outcome_view(&outcome))
    };
    (status, page(&title, Some(&session), body)).into_response()
}

fn form(
    session: &Session,
    org: &str,
    name: &str,
    function: &FunctionInfo,
    args: &str,
    version: &str,
) -> Markup {
    let schema = function
        .schema
        .as_ref()
        .map(|schema| schema.to_string())
        .unwrap_or_default();
    html! {
        p { code { (function.name) ": " (function.signature) } }
        @if let Some(why) = &function.not_invocable {
            p class="problem" { "This function cannot be invoked over JSON: " (why) }
        } @else {
            form id="try-form" method="post" action={ "/console/plugins/" (org) "/" (name) "/try/" (super::urlencode(&function.name)) } data-schema=(schema) {
                input type="hidden" name="csrf" value=(session.csrf);
                div id="generated-fields" {}
                label for="args" { "Arguments (JSON: an object by parameter name, or an array by position)" }
                textarea id="args" name="args" rows="4" spellcheck="false" { (args) }
                label for="version" { "Version requirement (empty: the newest approved)" }
                input id="version" name="version" value=(version) placeholder="^1.2";
                button type="submit" { "Invoke" }
            }
        }
    }
}

fn outcome_view(outcome: &Outcome) -> Markup {
    let pretty = |value: &Json| serde_json::to_string_pretty(value).unwrap_or_default();
    match outcome {
        Outcome::Answered(answer) => html! {
            section id="outcome" aria-labelledby="outcome-heading" {
                h2 id="outcome-heading" { "Result" }
                pre { code id="result" { (pretty(&answer.result)) } }
                p id="ran" {
                    "Ran " (answer.release.name) "@" (answer.release.version)
                    " using " (answer.metering.fuel_used) " fuel in " (answer.metering.duration_us) " µs."
                }
                (logs(&answer.logs))
            }
        },
        Outcome::Failed(error) => {
            let logs_of: Vec<warden_host::LogEntry> = error
                .details
                .get("logs")
                .and_then(|logs| serde_json::from_value(logs.clone()).ok())
                .unwrap_or_default();
            html! {
                section id="outcome" aria-labelledby="outcome-heading" {
                    h2 id="outcome-heading" { "Error" }
                    p class="problem" role="alert" {
                        code id="error-code" { (error.code.as_str()) } ": " (error.message)
                    }
                    @if let Some(plugin_error) = error.details.get("error") {
                        p { "The plugin's error:" }
                        pre { code { (pretty(plugin_error)) } }
                    }
                    (logs(&logs_of))
                }
            }
        }
    }
}

fn logs(entries: &[warden_host::LogEntry]) -> Markup {
    html! {
        h3 { "Logs" }
        @if entries.is_empty() {
            p { "Nothing logged." }
        } @else {
            ol id="logs" {
                @for entry in entries {
                    li {
                        (source_label(&entry.source))
                        @if let Some(plugin) = &entry.plugin { " (" (plugin) ")" }
                        ": " (entry.message)
                    }
                }
            }
        }
    }
}

/// `info`, `stdout`, `host`...: a log message's level, or where else it
/// came from.
fn source_label(source: &warden_host::LogSource) -> String {
    match serde_json::to_value(source) {
        Ok(Json::String(label)) => label,
        Ok(Json::Object(map)) => map
            .values()
            .next()
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}
