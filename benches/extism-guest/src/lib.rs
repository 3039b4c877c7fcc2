//! Greets by name, logging the greeting: what `examples/hello` does.

use extism_pdk::*;

#[plugin_fn]
pub fn greet(name: String) -> FnResult<String> {
    info!("greeting {}", name);
    Ok(format!("Hello, {name}!"))
}
