//! `http`: outgoing HTTP (`wasi:http/outgoing-handler`) to the hosts on the
//! plugin's allow-list, granted one rule at a time (`http:api.example.com`,
//! `http:*.example.com:8443`, `http:10.0.0.0/8`, `http:*`). The policy
//! checks every request (see [`policy`]).

pub(crate) mod policy;
mod rules;

pub use rules::{HostPattern, HttpRule};

use super::{Instance, Unit};
use crate::state::HostState;
use policy::HttpPolicy;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `http` capability.
pub(crate) struct Http;

/// One instance's HTTP state.
pub(crate) struct HttpContext {
    ctx: WasiHttpCtx,
    policy: HttpPolicy,
}

impl Unit for Http {
    const NAME: &'static str = "http";
    const DESCRIPTION: &'static str = "outgoing HTTP to the hosts on the allow-list";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("wasi:http", &["outgoing-handler", "types"])];
    const GRANT: Option<&'static str> = Some("http:HOST[:PORT]");
    const NEEDS_GRANT: bool = true;

    /// The allow-list; empty means no HTTP at all.
    type Grant = Vec<HttpRule>;
    type Backend = ();
    type Context = HttpContext;

    fn grant(rules: &mut Vec<HttpRule>, argument: Option<&str>) -> Result<(), String> {
        match argument {
            None => Err(
                "name the hosts, e.g. http:api.example.com (or http:* for any public host)".into(),
            ),
            Some(rule) => {
                rules.push(rule.parse()?);
                Ok(())
            }
        }
    }

    fn grant_texts(rules: &Vec<HttpRule>) -> Vec<String> {
        rules.iter().map(|rule| format!("http:{rule}")).collect()
    }

    fn granted(rules: &Vec<HttpRule>) -> bool {
        !rules.is_empty()
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    fn context(rules: &Vec<HttpRule>, _: &(), instance: &mut Instance<'_>) -> HttpContext {
        HttpContext {
            ctx: WasiHttpCtx::new(),
            policy: HttpPolicy {
                rules: rules.clone(),
                transcript: instance.transcript.clone(),
            },
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.caps.http.policy,
            table: &mut self.table,
            ctx: &mut self.caps.http.ctx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Grants;

    #[test]
    fn the_grant_round_trips_through_its_text() {
        let texts = [
            "http:*.example.com:8443",
            "http:10.0.0.0/8",
            "http:api.example.com",
        ];
        let grants = Grants::parse(texts).unwrap();
        assert_eq!(grants.http.len(), 3);
        assert_eq!(grants.list(), texts);
        assert_eq!(
            Grants::parse(grants.list().iter().map(String::as_str)).unwrap(),
            grants
        );
        for bad in ["http", "http:", "http:https://x.com", "http:x.com:99999"] {
            assert!(Grants::parse([bad]).is_err(), "{bad}");
        }
    }
}
