//! Builds every guest component from source and writes one path constant per
//! guest:
//! - the Rust test guests and the examples, for wasm32-wasip2 with a nested
//!   `cargo build` (the target is added with rustup first when missing);
//! - the polyglot guest of `tests/polyglot/`, from Python with componentize-py
//!   and from JavaScript with componentize-js, each toolchain installed from
//!   PyPI / npm at a pinned version on first use.
//!
//! Everything lands under `<target dir>/guests/`, shared by every profile of
//! the outer build (test, clippy, bench), so each guest is built once. The
//! Python and JavaScript builds are cached by the hash of their inputs.

use sha2::{Digest, Sha256};
use std::env;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// (constant name, package name) of each Rust guest.
const RUST_GUESTS: &[(&str, &str)] = &[
    ("HOSTILE", "warden-guest-hostile"),
    ("CAPABILITIES", "warden-guest-capabilities"),
    ("TYPES", "warden-guest-types"),
    ("FOREIGN", "warden-guest-foreign"),
    ("VAULT", "warden-guest-vault"),
    ("RELAY", "warden-guest-relay"),
    ("DEPENDENT", "warden-guest-dependent"),
    ("KEEPER", "warden-guest-keeper"),
    ("TELLER", "warden-guest-teller"),
    ("ASKER", "warden-guest-asker"),
    ("HELLO", "warden-example-hello"),
    ("TEXT_TOOLS", "warden-example-text-tools"),
    ("COUNTER", "warden-example-counter"),
    ("HTTP_FETCH", "warden-example-http-fetch"),
    ("WORD_REPORT", "warden-example-word-report"),
];

/// The HTTP API's contract checkers (PyPI), run by the registry's tests
/// against a live server: schemathesis, the spec validator, and the
/// Standard Webhooks library that verifies the server's webhook signatures.
const API_TOOLS: [&str; 3] = [
    "schemathesis==4.32.5",
    "openapi-spec-validator==0.9.0",
    "standardwebhooks==1.3.0",
];

/// The deployment checkers the suite runs on `deploy/kubernetes/` (PyPI):
/// the Kubernetes schemas of a pinned version, and a policy checker.
const DEPLOY_TOOLS: [&str; 2] = ["kubernetes-validate==1.37.0", "checkov==3.3.30"];

/// The componentize-py release the Python guest is built with (PyPI).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release the JavaScript guest is built with (npm).
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
/// The accessibility checker the console's browser tests inject (npm).
const AXE_CORE: &str = "axe-core@4.14.1";
/// The world both polyglot guests implement (`tests/polyglot/wit`).
const POLYGLOT_WORLD: &str = "polyglot";

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../..").canonicalize().unwrap();
    for dir in ["tests/guests", "tests/polyglot", "examples", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let guests = target_dir(&workspace).join("guests");
    std::fs::create_dir_all(&guests).unwrap();

    let mut constants = String::new();
    let mut constant = |name: &str, what: &str, path: &Path| {
        constants.push_str(&format!(
            "/// The {what} component.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    };

    for (name, path) in build_rust_guests(&workspace, &guests.join("rust")) {
        constant(name, &format!("`{name}` Rust guest"), &path);
    }
    let polyglot = workspace.join("tests/polyglot");
    let toolchains = guests.join("toolchains");
    // One build at a time per target directory: the toolchains and outputs are shared.
    let lock = File::create(guests.join(".lock")).unwrap();
    lock.lock().unwrap();
    let python = build_python(&polyglot, &toolchains, &guests.join("polyglot"), false);
    constant(
        "PYTHON_POLYGLOT",
        "polyglot guest built from Python",
        &python,
    );
    let stubbed = build_python(&polyglot, &toolchains, &guests.join("polyglot"), true);
    constant(
        "PYTHON_POLYGLOT_STUB_WASI",
        "polyglot guest built from Python with `--stub-wasi` (more core instances)",
        &stubbed,
    );
    let javascript = build_javascript(&polyglot, &toolchains, &guests.join("polyglot"));
    constant(
        "JAVASCRIPT_POLYGLOT",
        "polyglot guest built from JavaScript",
        &javascript,
    );
    let api_tools = api_tools(&toolchains);
    let deploy_tools = deploy_tools(&toolchains);
    let axe = npm_package(&toolchains, AXE_CORE).join("node_modules/axe-core/axe.min.js");
    drop(lock);
    constants.push_str(&format!(
        "/// axe-core's script, which the console's browser tests inject.\npub const AXE_CORE_JS: &str = {:?};\n",
        axe.display().to_string()
    ));
    constants.push_str(&format!(
        "/// The bin directory of the deployment checkers (kubernetes-validate,\n/// checkov).\npub const DEPLOY_TOOLS_BIN: &str = {:?};\n",
        deploy_tools.display().to_string()
    ));
    constants.push_str(&format!(
        "/// The bin directory of the API contract tools (schemathesis,\n/// openapi-spec-validator).\npub const API_TOOLS_BIN: &str = {:?};\n",
        api_tools.display().to_string()
    ));

    std::fs::write(out_dir.join("guests.rs"), constants).unwrap();
}

/// The outer build's target directory (where `guests/` is kept).
fn target_dir(workspace: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// Stops the build with one line that says what to do.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn build_rust_guests(workspace: &Path, target_dir: &Path) -> Vec<(&'static str, PathBuf)> {
    if let Err(e) = warden_guest_build::ensure_target(workspace) {
        fail(e);
    }
    let packages: Vec<&str> = RUST_GUESTS.iter().map(|(_, package)| *package).collect();
    let mut command = warden_guest_build::cargo_build(workspace, &packages);
    command
        .arg("--target-dir")
        .arg(target_dir)
        // Small guests regardless of the workspace's release profile.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = command
        .status()
        .unwrap_or_else(|e| fail(format!("running cargo for the guests: {e}")));
    if !status.success() {
        fail("building the wasm32-wasip2 guests failed (cargo's errors are above)");
    }
    RUST_GUESTS
        .iter()
        .map(|(name, package)| {
            let path = warden_guest_build::component_path(target_dir, package);
            if !path.exists() {
                fail(format!("{} was not built", path.display()));
            }
            (*name, path)
        })
        .collect()
}

/// Runs a set-up or build step, stopping the build with its output if it fails.
fn run(what: &str, command: &mut Command) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        fail(format!(
            "{what}: cannot run {:?}: {e}",
            command.get_program()
        ))
    });
    if !output.status.success() {
        fail(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
}

/// Hashes the inputs of one polyglot build: the toolchain and every file of
/// the given directories, by relative path and content.
fn inputs_hash(toolchain: &str, dirs: &[PathBuf]) -> String {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(toolchain.as_bytes());
    for dir in dirs {
        let mut files = Vec::new();
        walk(dir, &mut files);
        for file in files {
            hasher.update(file.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(std::fs::read(&file).unwrap());
            hasher.update([0]);
        }
    }
    hex(&hasher.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cached output: `out_dir/<stem>-<hash>.wasm`, built by `build` into a
/// temporary path and renamed into place only once complete.
fn cached(out_dir: &Path, stem: &str, hash: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let path = out_dir.join(format!("{stem}-{hash}.wasm"));
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(out_dir).unwrap();
    let partial = out_dir.join(format!("{stem}-{hash}.wasm.partial"));
    build(&partial);
    if !partial.exists() {
        fail(format!("{} was not produced", partial.display()));
    }
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// The API contract tools in a virtual environment of their own, installed
/// once; returns its `bin` directory.
fn api_tools(toolchains: &Path) -> PathBuf {
    python_tools(
        toolchains,
        "api-tools",
        &API_TOOLS,
        "the API contract tools",
    )
}

fn deploy_tools(toolchains: &Path) -> PathBuf {
    python_tools(
        toolchains,
        "deploy-tools",
        &DEPLOY_TOOLS,
        "the deployment checkers",
    )
}

/// `packages` (PyPI, pinned) in a virtual environment of their own under
/// `toolchains`, installed once; returns its bin directory.
fn python_tools(toolchains: &Path, name: &str, packages: &[&str], what: &str) -> PathBuf {
    let venv = toolchains.join(format!("{name}-{}", packages.join("-").replace("==", "-")));
    let stamp = venv.join(".installed");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            &format!("creating a Python virtual environment for {what} (needs python3 with venv)"),
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        );
        run(
            &format!("installing {} from PyPI", packages.join(" and ")),
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages),
        );
        std::fs::write(&stamp, packages.join("\n")).unwrap();
    }
    venv.join("bin")
}

/// componentize-py in a virtual environment of its own, installed once.
fn componentize_py(toolchains: &Path) -> PathBuf {
    let venv = toolchains.join(COMPONENTIZE_PY.replace("==", "-"));
    let program = venv.join("bin/componentize-py");
    let stamp = venv.join(".installed");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            "creating a Python virtual environment for componentize-py (needs python3 with venv)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        );
        run(
            &format!("installing {COMPONENTIZE_PY} from PyPI"),
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(COMPONENTIZE_PY),
        );
        std::fs::write(&stamp, COMPONENTIZE_PY).unwrap();
    }
    program
}

/// `stub_wasi`: componentize-py's `--stub-wasi`, which replaces the WASI
/// imports with stubs (and instantiates many more core instances).
fn build_python(polyglot: &Path, toolchains: &Path, out_dir: &Path, stub_wasi: bool) -> PathBuf {
    let wit = polyglot.join("wit");
    let source = polyglot.join("python");
    let flags: &[&str] = if stub_wasi { &["--stub-wasi"] } else { &[] };
    let toolchain = format!("{COMPONENTIZE_PY} {}", flags.join(" "));
    let hash = inputs_hash(&toolchain, &[wit.clone(), source.clone()]);
    let stem = if stub_wasi {
        "python-stub-wasi"
    } else {
        "python"
    };
    cached(out_dir, stem, &hash, |output| {
        let program = componentize_py(toolchains);
        // componentize-py leaves __pycache__ next to the sources: build from a copy.
        let staging = out_dir.join(format!("{stem}-{hash}.src"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        for entry in std::fs::read_dir(&source).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "py") {
                std::fs::copy(entry.path(), staging.join(entry.file_name())).unwrap();
            }
        }
        run(
            "building the Python guest with componentize-py",
            Command::new(program)
                .current_dir(&staging)
                .arg("--wit-path")
                .arg(&wit)
                .args(["--world", POLYGLOT_WORLD, "componentize"])
                .args(flags)
                .args(["app", "--output"])
                .arg(output),
        );
        let _ = std::fs::remove_dir_all(&staging);
    })
}

/// componentize-js in a node_modules of its own, installed once.
fn componentize_js(toolchains: &Path) -> PathBuf {
    npm_package(toolchains, COMPONENTIZE_JS).join("node_modules/.bin/componentize-js")
}

/// The npm package `spec` (`name@version`) in a prefix of its own under
/// `toolchains`, installed once; returns the prefix.
fn npm_package(toolchains: &Path, spec: &str) -> PathBuf {
    let prefix = toolchains.join(spec.trim_start_matches('@').replace(['/', '@'], "-"));
    let stamp = prefix.join(".installed");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&prefix);
        std::fs::create_dir_all(&prefix).unwrap();
        run(
            &format!("installing {spec} from npm (needs node and npm)"),
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .arg("--prefix")
                .arg(&prefix)
                .arg(spec),
        );
        std::fs::write(&stamp, spec).unwrap();
    }
    prefix
}

fn build_javascript(polyglot: &Path, toolchains: &Path, out_dir: &Path) -> PathBuf {
    let wit = polyglot.join("wit");
    let source = polyglot.join("javascript");
    let hash = inputs_hash(COMPONENTIZE_JS, &[wit.clone(), source.clone()]);
    cached(out_dir, "javascript", &hash, |output| {
        let program = componentize_js(toolchains);
        run(
            "building the JavaScript guest with componentize-js",
            Command::new(program)
                .arg(source.join("app.js"))
                .arg("--wit")
                .arg(&wit)
                .args(["--world-name", POLYGLOT_WORLD])
                // No outgoing HTTP (a capability that needs a grant) and no
                // incoming-handler export: this plugin uses neither.
                .args(["--disable", "http", "fetch-event"])
                .arg("--out")
                .arg(output),
        );
    })
}
