//! `warden inspect`: what a component exports and what it asks for.

use crate::admin::Format;
use crate::exit::{Failure, read_component};
use crate::run::CacheArgs;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use warden_host::format_bytes;

#[derive(Args)]
pub struct InspectArgs {
    /// The component (.wasm built for wasm32-wasip2).
    component: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn inspect(args: InspectArgs, output: Format) -> Result<u8, Failure> {
    let bytes = read_component(&args.component)?;
    let engine = args.cache.local_engine(None)?;
    let component = engine.compile(&bytes)?;
    let requested = component.requested();

    if output.json {
        let capabilities: Vec<_> = requested
            .capabilities
            .iter()
            .map(|(capability, imports)| {
                json!({
                    "capability": capability.to_string(),
                    "needs_grant": capability.needs_grant(),
                    "description": capability.description(),
                    "imports": imports,
                })
            })
            .collect();
        let report = json!({
            "digest": component.digest(),
            "size": component.size(),
            "functions": component.functions().collect::<Vec<_>>(),
            "capabilities": capabilities,
            "unsupported_imports": requested.unsupported,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(crate::exit::OK);
    }

    outln!("{}", args.component.display());
    outln!("  digest  {}", component.digest());
    outln!("  size    {}", format_bytes(component.size()));
    outln!();
    outln!("functions");
    let width = component
        .functions()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0);
    for function in component.functions() {
        outln!("  {:width$}  {}", function.name, function.signature);
        if let Some(reason) = &function.not_invocable {
            outln!("  {:width$}  (not invocable over JSON: {reason})", "");
        }
    }
    outln!();
    outln!("capabilities");
    for (capability, imports) in &requested.capabilities {
        let grant = if capability.needs_grant() {
            "needs a grant"
        } else {
            "always linked"
        };
        outln!(
            "  {:<10}  {grant}: {}",
            capability.to_string(),
            capability.description()
        );
        for import in imports {
            outln!("  {:<10}    {import}", "");
        }
    }
    if !requested.unsupported.is_empty() {
        outln!();
        outln!(
            "imports no host provides (a declared dependency must export each: [dependencies] in warden.toml)"
        );
        for import in &requested.unsupported {
            outln!("  {import}");
        }
    }
    Ok(crate::exit::OK)
}
