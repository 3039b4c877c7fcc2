//! Signing in with an API token (a server-side session) and signing out.

use super::{COOKIE, Csrf, cookie_secret, failure, form_session, page};
use crate::api::AppState;
use crate::domain::sessions::{self, SessionError};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
}

async fn sign_in_page() -> Markup {
    sign_in_form(None)
}

fn sign_in_form(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(problem) = problem {
                p class="problem" role="alert" { (problem) }
            }
            form method="post" action="/console/sign-in" {
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
            p { "Sign in with an API token of your organization (" code { "warden token create" } ")." }
        },
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    match sessions::start(&state.db, form.token.trim()).await {
        Ok(started) => {
            // Secure when the browser reached the server over https (behind
            // a proxy that says so).
            let secure = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = format!(
                "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
                started.secret,
                started.max_age_secs,
                if secure { "; Secure" } else { "" }
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/console/catalog"),
            )
                .into_response()
        }
        Err(SessionError::Db(error)) => failure(&error.to_string()),
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            sign_in_form(Some(
                "That token was not accepted: it is unknown, revoked or expired.",
            )),
        )
            .into_response(),
    }
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    if let Err(refused) = form_session(&state, &headers, &form.csrf).await {
        return refused;
    }
    if let Some(secret) = cookie_secret(&headers)
        && let Err(error) = sessions::end(&state.db, &secret).await
    {
        return failure(&error.to_string());
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}
