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
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(crate::exit::OK);
    }

    println!("{}", args.component.display());
    println!("  digest  {}", component.digest());
    println!("  size    {}", format_bytes(component.size()));
    println!();
    println!("functions");
    let width = component
        .functions()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0);
    for function in component.functions() {
        println!("  {:width$}  {}", function.name, function.signature);
        if let Some(reason) = &function.not_invocable {
            println!("  {:width$}  (not invocable over JSON: {reason})", "");
        }
    }
    println!();
    println!("capabilities");
    for (capability, imports) in &requested.capabilities {
        let grant = if capability.needs_grant() {
            "needs a grant"
        } else {
            "always linked"
        };
        println!(
            "  {:<10}  {grant}: {}",
            capability.to_string(),
            capability.description()
        );
        for import in imports {
            println!("  {:<10}    {import}", "");
        }
    }
    if !requested.unsupported.is_empty() {
        println!();
        println!(
            "imports no host provides (a declared dependency must export each: [dependencies] in warden.toml)"
        );
        for import in &requested.unsupported {
            println!("  {import}");
        }
    }
    Ok(crate::exit::OK)
}
