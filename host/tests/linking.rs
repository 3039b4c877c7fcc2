//! Plugins linked to their dependencies at run time: the `dependent` guest
//! imports the `vault` interface, which the `vault` guest exports (and the
//! `relay` guest forwards to its own vault). Each dependency runs with its
//! own grants and namespace; one invocation's fuel, memory and deadline
//! cover the whole call tree.

mod common;

use common::{compiled, engine, limits};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use warden_host::{
    Backends, Capability, Error, Grants, KvStore, Limits, LogSource, MemoryKvStore, Output, Plugin,
    PluginSettings,
};
use warden_test_programs::{DEPENDENT, HELLO, RELAY, VAULT};

const VAULT_NAME: &str = "acme/vault@1.0.0";
const RELAY_NAME: &str = "acme/relay@1.0.0";

/// The vault, with kv in its own namespace of `kv`.
fn vault(kv: &Arc<impl KvStore>, limits: Limits) -> Plugin {
    Plugin::new(
        engine(),
        &compiled(VAULT),
        PluginSettings {
            name: VAULT_NAME.into(),
            grants: Grants::parse(["kv"]).unwrap(),
            limits,
            backends: Backends {
                kv: Some((kv.clone() as Arc<dyn KvStore>, "acme/vault".into())),
                ..Backends::default()
            },
        },
    )
    .unwrap()
}

fn relay(vault: &Plugin) -> Plugin {
    Plugin::linked(
        engine(),
        &compiled(RELAY),
        PluginSettings {
            name: RELAY_NAME.into(),
            ..PluginSettings::default()
        },
        std::slice::from_ref(vault),
    )
    .unwrap()
}

/// The dependent, with no grant at all, linked to `dependency`.
fn dependent(dependency: &Plugin, limits: Limits) -> Result<Plugin, Error> {
    Plugin::linked(
        engine(),
        &compiled(DEPENDENT),
        PluginSettings {
            name: "acme/dependent@1.0.0".into(),
            limits,
            ..PluginSettings::default()
        },
        std::slice::from_ref(dependency),
    )
}

async fn value(plugin: &Plugin, function: &str, args: serde_json::Value) -> serde_json::Value {
    common::value(plugin, function, args).await
}

#[tokio::test]
async fn a_plugin_without_kv_reaches_kv_only_through_its_dependency_in_the_dependency_namespace() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, Limits::default());
    let dependent = dependent(&vault, Limits::default()).unwrap();
    assert!(
        !compiled(DEPENDENT).requested().contains(&Capability::Kv),
        "the dependent imports no kv of its own"
    );
    assert_eq!(
        value(&dependent, "remember", json!(["colour", "blue"])).await,
        json!(null)
    );
    assert_eq!(
        value(&dependent, "recall", json!(["colour"])).await,
        json!("blue")
    );
    // Written in the vault's namespace, and nowhere else.
    assert_eq!(
        kv.get("acme/vault", "colour").await.unwrap(),
        Some(b"blue".to_vec())
    );
    assert_eq!(
        kv.list_keys("acme/dependent", "", 100).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        kv.list_keys("test", "", 100).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(dependent.tree_size(), 2);
    let linked: Vec<_> = dependent
        .dependencies()
        .map(|(import, d)| (import.to_owned(), d.settings().name.clone()))
        .collect();
    assert_eq!(
        linked,
        [(
            "warden-tests:linking/vault@0.1.0".to_owned(),
            VAULT_NAME.to_owned()
        )]
    );
}

#[tokio::test]
async fn a_dependency_gets_none_of_its_dependents_grants() {
    // The vault imports kv; granted to the dependent, not to the vault, it
    // does not load: nothing flows down a link.
    let vault = Plugin::new(
        engine(),
        &compiled(VAULT),
        PluginSettings {
            name: VAULT_NAME.into(),
            ..PluginSettings::default()
        },
    );
    match vault {
        Err(Error::MissingCapabilities(missing)) => assert_eq!(missing, [Capability::Kv]),
        Err(other) => panic!("expected missing kv, got {other}"),
        Ok(_) => panic!("a vault without the kv grant loaded"),
    }
}

#[tokio::test]
async fn one_instance_of_a_dependency_serves_the_whole_invocation_and_no_other() {
    let kv = Arc::new(MemoryKvStore::new());
    let dependent = dependent(&vault(&kv, Limits::default()), Limits::default()).unwrap();
    for _ in 0..2 {
        let call = dependent
            .invoke("shout-times", &json!(["hi", 3]))
            .await
            .unwrap();
        // Three shouts and nothing left over from the previous invocation.
        assert_eq!(call.output, Output::Value(json!(["HI", 3])));
        let from_vault: Vec<_> = call
            .logs
            .iter()
            .filter(|entry| entry.plugin.as_deref() == Some(VAULT_NAME))
            .map(|entry| (entry.source, entry.message.as_str()))
            .collect();
        assert_eq!(
            from_vault,
            [(
                LogSource::Log(warden_host::LogLevel::Info),
                "vault shouts hi"
            ); 3]
        );
    }
}

#[tokio::test]
async fn the_fuel_a_dependency_burns_is_the_invocations() {
    let kv = Arc::new(MemoryKvStore::new());
    let dependent = dependent(&vault(&kv, Limits::default()), Limits::default()).unwrap();
    let once = dependent
        .invoke("shout-times", &json!(["hi", 1]))
        .await
        .unwrap();
    let often = dependent
        .invoke("shout-times", &json!(["hi", 200]))
        .await
        .unwrap();
    assert!(
        often.metering.fuel_used > once.metering.fuel_used + 100 * 1_000,
        "200 calls into the vault cost {} fuel, one call {}",
        often.metering.fuel_used,
        once.metering.fuel_used
    );
}

#[tokio::test]
async fn a_spinning_dependency_is_stopped_by_the_callers_fuel() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, limits(|l| l.fuel = 1_000_000_000));
    let dependent = dependent(&vault, limits(|l| l.fuel = 20_000_000)).unwrap();
    let failure = common::failure(&dependent, "spin-there", json!([])).await;
    assert_eq!(failure.error.code(), "out_of_fuel");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    assert!(
        failure
            .error
            .to_string()
            .starts_with(&format!("in dependency {VAULT_NAME}: "))
    );
    // Every unit of the invocation's fuel is accounted for, none beyond it.
    assert_eq!(failure.metering.unwrap().fuel_used, 20_000_000);
}

#[tokio::test]
async fn a_spinning_dependency_is_stopped_by_its_own_fuel_limit() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, limits(|l| l.fuel = 5_000_000));
    let dependent = dependent(&vault, limits(|l| l.fuel = 1_000_000_000)).unwrap();
    let failure = common::failure(&dependent, "spin-there", json!([])).await;
    assert_eq!(failure.error.code(), "out_of_fuel");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    let used = failure.metering.unwrap().fuel_used;
    assert!(
        (5_000_000..6_000_000).contains(&used),
        "the vault may burn its own 5,000,000 (the dependent a little more), used {used}"
    );
}

#[tokio::test]
async fn a_spinning_dependency_is_stopped_at_the_invocations_deadline() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(
        &kv,
        limits(|l| {
            l.fuel = u64::MAX / 2;
            l.timeout = Duration::from_secs(30);
        }),
    );
    let dependent = dependent(
        &vault,
        limits(|l| {
            l.fuel = u64::MAX / 2;
            l.timeout = Duration::from_millis(300);
        }),
    )
    .unwrap();
    let failure = common::failure(&dependent, "spin-there", json!([])).await;
    assert_eq!(failure.error.code(), "deadline_exceeded");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    let took = failure.metering.unwrap().duration;
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn the_call_trees_memory_counts_against_the_invoked_plugins_limit() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, limits(|l| l.memory_bytes = 256 << 20));
    let dependent = dependent(&vault, limits(|l| l.memory_bytes = 48 << 20)).unwrap();
    // Within: 8 + 8 MiB on top of both plugins' initial memories.
    let grown = value(&dependent, "grow-both", json!([8, 8])).await;
    assert_eq!(grown, json!(8u64 << 20));
    // Past it together, though each side alone is within its own limit.
    let failure = common::failure(&dependent, "grow-both", json!([20, 30])).await;
    assert_eq!(failure.error.code(), "memory_limit");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    assert!(
        failure.error.to_string().contains("together"),
        "{}",
        failure.error
    );
    // A bomb in the dependency alone.
    let failure = common::failure(&dependent, "grow-there", json!([1024])).await;
    assert_eq!(failure.error.code(), "memory_limit");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
}

#[tokio::test]
async fn a_panicking_dependency_ends_the_invocation_naming_itself() {
    let kv = Arc::new(MemoryKvStore::new());
    let dependent = dependent(&vault(&kv, Limits::default()), Limits::default()).unwrap();
    let failure = common::failure(&dependent, "crash-there", json!(["the vault gave up"])).await;
    assert_eq!(failure.error.code(), "trap");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    assert!(
        failure.error.to_string().contains("the vault gave up"),
        "{}",
        failure.error
    );
    // The dependent and its dependency run again afterwards.
    assert_eq!(
        value(&dependent, "shout-times", json!(["ok", 1])).await,
        json!(["OK", 1])
    );
}

#[tokio::test]
async fn dependencies_link_transitively_and_the_innermost_failure_is_named() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, Limits::default());
    let relay = relay(&vault);
    let dependent = dependent(&relay, Limits::default()).unwrap();
    assert_eq!(dependent.tree_size(), 3);
    let call = dependent
        .invoke("shout-times", &json!(["hey", 2]))
        .await
        .unwrap();
    assert_eq!(call.output, Output::Value(json!(["HEY", 2])));
    let labels: Vec<_> = call
        .logs
        .iter()
        .map(|entry| {
            (
                entry.plugin.as_deref().unwrap_or("-"),
                entry.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            (RELAY_NAME, "relay passes hey"),
            (VAULT_NAME, "vault shouts hey"),
            (RELAY_NAME, "relay passes hey"),
            (VAULT_NAME, "vault shouts hey"),
        ]
    );
    value(&dependent, "remember", json!(["k", "v"])).await;
    assert_eq!(
        kv.get("acme/vault", "k").await.unwrap(),
        Some(b"v".to_vec())
    );

    let failure = common::failure(&dependent, "crash-there", json!(["deep down"])).await;
    assert_eq!(failure.error.code(), "trap");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
}

#[tokio::test]
async fn an_import_no_dependency_exports_is_named() {
    let hello = common::plugin(HELLO, &[], Limits::default());
    let error = dependent(&hello, Limits::default()).err().expect("linked");
    assert_eq!(error.code(), "unsupported_imports");
    assert_eq!(
        error.to_string(),
        "the component imports warden-tests:linking/vault@0.1.0, which its dependency test does not export"
    );
    // And without any dependency: the import is unsupported, as always.
    let alone = Plugin::new(engine(), &compiled(DEPENDENT), PluginSettings::default());
    assert!(
        matches!(alone, Err(Error::UnsupportedImports(imports)) if imports == ["warden-tests:linking/vault@0.1.0"])
    );
}

/// A plugin exporting the vault interface as one function `name` of
/// `u32 -> u32`.
fn impostor(name: &str) -> Plugin {
    let text = format!(
        r#"(component
            (core module $m (func (export "f") (param i32) (result i32) local.get 0))
            (core instance $i (instantiate $m))
            (func $f (param "key" u32) (result u32) (canon lift (core func $i "f")))
            (instance $vault (export "{name}" (func $f)))
            (export "warden-tests:linking/vault@0.1.0" (instance $vault)))"#
    );
    let component = engine().compile(&wat::parse_str(text).unwrap()).unwrap();
    Plugin::new(
        engine(),
        &component,
        PluginSettings {
            name: "acme/impostor@1.0.0".into(),
            ..PluginSettings::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn an_interface_with_other_functions_or_types_is_not_linked() {
    let error = dependent(&impostor("other"), Limits::default())
        .err()
        .expect("linked");
    assert_eq!(error.code(), "link_failed");
    assert_eq!(
        error.to_string(),
        "cannot link warden-tests:linking/vault@0.1.0 to acme/impostor@1.0.0: warden-tests:linking/vault@0.1.0 has no function `put`"
    );
    let error = dependent(&impostor("put"), Limits::default())
        .err()
        .expect("linked");
    assert_eq!(error.code(), "link_failed");
    assert!(
        error
            .to_string()
            .ends_with("`put` is `func(key: u32) -> u32` in warden-tests:linking/vault@0.1.0"),
        "{error}"
    );
}

/// A kv store whose reads never answer.
struct StalledKv;

#[async_trait::async_trait]
impl KvStore for StalledKv {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, warden_host::KvError> {
        std::future::pending().await
    }
    async fn set(
        &self,
        _: &str,
        _: &str,
        _: &[u8],
        _: warden_host::KvQuota,
    ) -> Result<(), warden_host::KvError> {
        Ok(())
    }
    async fn delete(&self, _: &str, _: &str) -> Result<bool, warden_host::KvError> {
        Ok(false)
    }
    async fn list_keys(
        &self,
        _: &str,
        _: &str,
        _: u64,
    ) -> Result<Vec<String>, warden_host::KvError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_dependency_waiting_in_a_host_call_is_stopped_at_its_own_deadline() {
    // No epoch check runs while the vault waits for kv: its deadline still
    // holds, and the error names it.
    let vault = vault(
        &Arc::new(StalledKv),
        limits(|l| l.timeout = Duration::from_millis(200)),
    );
    let dependent = dependent(&vault, limits(|l| l.timeout = Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    let failure = common::failure(&dependent, "recall", json!(["k"])).await;
    assert_eq!(failure.error.code(), "deadline_exceeded");
    assert_eq!(failure.error.dependency(), Some(VAULT_NAME));
    assert!(
        failure.error.to_string().ends_with("ran longer than 200ms"),
        "{}",
        failure.error
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_call_tree_holds_at_most_max_call_tree_plugins() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, Limits::default());
    // dependent -> relay x n -> vault: n + 2 plugins.
    let chain = |relays: usize| {
        let mut last = vault.clone();
        for _ in 0..relays {
            last = relay(&last);
        }
        last
    };
    let longest = warden_host::MAX_CALL_TREE - 2;
    let dependent = dependent(&chain(longest), Limits::default()).unwrap();
    assert_eq!(dependent.tree_size(), warden_host::MAX_CALL_TREE);
    let call = dependent
        .invoke("shout-times", &json!(["deep", 1]))
        .await
        .unwrap();
    assert_eq!(call.output, Output::Value(json!(["DEEP", 1])));
    let error = self::dependent(&chain(longest + 1), Limits::default())
        .err()
        .expect("linked past the maximum");
    assert_eq!(error.code(), "invalid_config");
    assert!(
        error.to_string().contains(&format!(
            "would hold {} plugins; at most {} are linked",
            warden_host::MAX_CALL_TREE + 1,
            warden_host::MAX_CALL_TREE
        )),
        "{error}"
    );
}

#[tokio::test]
async fn passing_flags_to_a_dependency_divides_the_read_budget() {
    // word-report passes flags to text-tools' `find`: its reads (the
    // arguments of its calls included) get the budget of a result with
    // flags, since a flag costs the host far more than wasmtime charges.
    let text_tools = Plugin::new(
        engine(),
        &compiled(warden_test_programs::TEXT_TOOLS),
        PluginSettings {
            name: "acme/text-tools@0.1.0".into(),
            ..PluginSettings::default()
        },
    )
    .unwrap();
    let small = limits(|l| {
        l.result_bytes = 1 << 20;
        l.host_call_bytes = 16 << 10;
    });
    // Undivided, 16 x 1 MiB could be read; divided by 32, 512 KiB + 64 KiB.
    let budget = small.read_budget_divided(warden_host::FLAGS_READ_DIVISOR);
    assert_eq!(budget, (512 << 10) + warden_host::READ_SLACK_BYTES as usize);
    let report = Plugin::linked(
        engine(),
        &compiled(warden_test_programs::WORD_REPORT),
        PluginSettings {
            name: "acme/word-report@0.1.0".into(),
            limits: small,
            ..PluginSettings::default()
        },
        &[text_tools],
    )
    .unwrap();
    // The whole text goes to text-tools' `count`: an argument word-report's
    // store reads.
    let text = |bytes: usize| format!("x\n{}", "ab ".repeat(bytes / 3));
    match report.invoke("summarize", &json!([text(400 << 10)])).await {
        Ok(call) => assert!(matches!(call.output, Output::Value(ref v) if v["words"] == 136_534)),
        Err(failure) => panic!("400 KiB: {}", failure.error),
    }
    match report.invoke("summarize", &json!([text(700 << 10)])).await {
        Ok(_) => panic!("700 KiB of arguments were read past the divided budget"),
        Err(failure) => assert_eq!(
            failure.error.code(),
            "host_call_too_large",
            "{}",
            failure.error
        ),
    }
}

/// A component whose only export, interface `t:deep/v@1.0.0`, has a function
/// taking lists nested `depth` deep (or importing it, if `import`).
fn deep(depth: usize, import: bool) -> Vec<u8> {
    let mut types = String::from("(type $t0 (list u8))");
    for level in 1..=depth {
        types.push_str(&format!("(type $t{level} (list $t{}))", level - 1));
    }
    let text = if import {
        format!(
            r#"(component (import "t:deep/v@1.0.0" (instance {types} (export "f" (func (param "x" $t{depth}))))))"#
        )
    } else {
        format!(
            r#"(component
                (core module $m
                    (memory (export "mem") 1)
                    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)
                    (func (export "f") (param i32 i32)))
                (core instance $i (instantiate $m))
                {types}
                (func $f (param "x" $t{depth})
                    (canon lift (core func $i "f") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
                (instance $v (export "f" (func $f)))
                (export "t:deep/v@1.0.0" (instance $v)))"#
        )
    };
    wat::parse_str(text).unwrap()
}

#[tokio::test]
async fn a_function_that_cannot_cross_json_is_not_linked_either() {
    let settings = |name: &str| PluginSettings {
        name: name.into(),
        ..PluginSettings::default()
    };
    let link = |depth: usize| {
        let exporter = engine().compile(&deep(depth, false)).unwrap();
        let exporter = Plugin::new(engine(), &exporter, settings("acme/deep@1.0.0")).unwrap();
        let importer = engine().compile(&deep(depth, true)).unwrap();
        Plugin::linked(
            engine(),
            &importer,
            settings("acme/user@1.0.0"),
            &[exporter],
        )
    };
    assert!(link(8).is_ok());
    let error = link(warden_host::MAX_TYPE_DEPTH as usize + 8)
        .err()
        .expect("a type past the depth budget was linked");
    assert_eq!(error.code(), "link_failed");
    assert!(
        error
            .to_string()
            .contains("`f` cannot cross between plugins"),
        "{error}"
    );
}

/// A component exporting interfaces `t:wide/i{index}@1.0.0` for each of
/// `indexes`, each with `functions` functions `f0`... of `func() -> u32`.
fn wide_exporter(name: &str, indexes: std::ops::Range<usize>, functions: usize) -> Plugin {
    let lifts: String = (0..functions)
        .map(|k| format!(r#"(func $f{k} (result u32) (canon lift (core func $i "f")))"#))
        .collect();
    let exports: String = (0..functions)
        .map(|k| format!(r#"(export "f{k}" (func $f{k}))"#))
        .collect();
    let instances: String = indexes
        .map(|index| format!(r#"(instance $v{index} {exports}) (export "t:wide/i{index}@1.0.0" (instance $v{index}))"#))
        .collect();
    let text = format!(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 7))
            (core instance $i (instantiate $m))
            {lifts}
            {instances})"#
    );
    let component = engine().compile(&wat::parse_str(text).unwrap()).unwrap();
    Plugin::new(
        engine(),
        &component,
        PluginSettings {
            name: format!("acme/{name}@1.0.0"),
            ..PluginSettings::default()
        },
    )
    .unwrap()
}

/// A component importing `t:wide/i{k}@1.0.0` for each of `interfaces`, each
/// with `functions` functions.
fn wide_importer(interfaces: usize, functions: usize) -> warden_host::CompiledComponent {
    let imports: String = (0..interfaces)
        .map(|index| {
            let funcs: String = (0..functions)
                .map(|k| format!(r#"(export "f{k}" (func (result u32)))"#))
                .collect();
            format!(r#"(import "t:wide/i{index}@1.0.0" (instance {funcs}))"#)
        })
        .collect();
    engine()
        .compile(&wat::parse_str(format!("(component {imports})")).unwrap())
        .unwrap()
}

#[tokio::test]
async fn what_one_component_links_is_bounded_before_anything_is_compared() {
    let link = |importer: &warden_host::CompiledComponent, dependencies: &[Plugin]| {
        Plugin::linked(
            engine(),
            importer,
            PluginSettings {
                name: "acme/user@1.0.0".into(),
                ..PluginSettings::default()
            },
            dependencies,
        )
    };
    // Imports: 64 link; 65 are refused before any is matched.
    let exporters = [wide_exporter(
        "wide",
        0..warden_host::MAX_LINKED_IMPORTS + 1,
        1,
    )];
    let within = wide_importer(warden_host::MAX_LINKED_IMPORTS, 1);
    let linked = link(&within, &exporters).unwrap();
    assert_eq!(
        linked.dependencies().count(),
        warden_host::MAX_LINKED_IMPORTS
    );
    let past = wide_importer(warden_host::MAX_LINKED_IMPORTS + 1, 1);
    let error = link(&past, &exporters).err().expect("65 imports linked");
    assert_eq!(error.code(), "invalid_config");
    assert!(
        error
            .to_string()
            .contains("imports 65 interfaces no host provides"),
        "{error}"
    );
    // Functions: 500 + 500 link; 600 + 600 do not.
    let halves = [wide_exporter("a", 0..1, 500), wide_exporter("b", 1..2, 500)];
    link(&wide_importer(2, 500), &halves).unwrap();
    let larger = [wide_exporter("a", 0..1, 600), wide_exporter("b", 1..2, 600)];
    let error = link(&wide_importer(2, 600), &larger)
        .err()
        .expect("1200 functions linked");
    assert_eq!(error.code(), "invalid_config");
    assert!(
        error.to_string().contains("more than 1000 functions"),
        "{error}"
    );
}

#[tokio::test]
async fn an_invocation_takes_from_the_pool_what_every_plugin_of_its_tree_defines() {
    let kv = Arc::new(MemoryKvStore::new());
    let vault = vault(&kv, Limits::default());
    let dependent = dependent(&vault, Limits::default()).unwrap();
    let (own, theirs) = (compiled(DEPENDENT).pool_use(), compiled(VAULT).pool_use());
    // What each component defines, as wasmtime counts it: a Rust component
    // has one memory of its own and at least one table.
    for each in [own, theirs] {
        assert_eq!(each.instances, 1);
        assert!(each.memories >= 1 && each.tables >= 1, "{each}");
    }
    assert_eq!(vault.pool_use(), theirs);
    assert_eq!(dependent.pool_use(), own.plus(theirs));
    assert_eq!(dependent.tree_size(), 2);
}

/// A dependency whose `get(n)` returns `n` bytes of its memory without
/// touching them (its code costs a few instructions, whatever `n`).
const BIG_SOURCE: &str = r#"
(component
  (core module $m
    (memory (export "memory") 17)
    (func (export "get") (param $n i32) (result i32)
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (local.get $n))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $get (param "n" u32) (result string)
    (canon lift (core func $i "get") (memory (core memory $i "memory"))))
  (instance $api (export "get" (func $get)))
  (export "warden-tests:big/api" (instance $api)))
"#;

/// Calls `get(n)` of the dependency `times` times: the host copies each
/// string into its memory (always at the same place), which costs its code
/// a few instructions per call.
const BIG_SINK: &str = r#"
(component
  (import "warden-tests:big/api" (instance $api
    (export "get" (func (param "n" u32) (result string)))))
  (core module $mem
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $pages i32)
      (local.set $pages
        (i32.sub
          (i32.shr_u (i32.add (i32.add (local.get 3) (i32.const 1024)) (i32.const 65535)) (i32.const 16))
          (memory.size)))
      (if (i32.gt_s (local.get $pages) (i32.const 0))
        (then (drop (memory.grow (local.get $pages)))))
      (i32.const 1024)))
  (core instance $mem (instantiate $mem))
  (core func $get (canon lower (func $api "get")
    (memory (core memory $mem "memory")) (realloc (core func $mem "realloc"))))
  (core module $main
    (import "api" "get" (func $get (param i32 i32)))
    (func (export "run") (param $times i32) (param $n i32) (result i32)
      (local $done i32)
      (block $out
        (loop $again
          (br_if $out (i32.ge_u (local.get $done) (local.get $times)))
          (call $get (local.get $n) (i32.const 16))
          (local.set $done (i32.add (local.get $done) (i32.const 1)))
          (br $again)))
      (local.get $done)))
  (core instance $main (instantiate $main
    (with "api" (instance (export "get" (func $get))))))
  (func (export "run") (param "times" u32) (param "n" u32) (result u32)
    (canon lift (core func $main "run"))))
"#;

#[tokio::test]
async fn what_crosses_a_link_costs_the_callers_fuel() {
    let engine = engine();
    let compile = |wat: &str| engine.compile(&wat::parse_str(wat).unwrap()).unwrap();
    let source = Plugin::new(
        engine,
        &compile(BIG_SOURCE),
        PluginSettings {
            name: "acme/source@1.0.0".into(),
            ..PluginSettings::default()
        },
    )
    .unwrap();
    let sink = |fuel: u64| {
        Plugin::linked(
            engine,
            &compile(BIG_SINK),
            PluginSettings {
                name: "acme/sink@1.0.0".into(),
                limits: Limits {
                    fuel,
                    ..Limits::default()
                },
                ..PluginSettings::default()
            },
            std::slice::from_ref(&source),
        )
        .unwrap()
    };
    // 64 copies of 1 MiB: 64 MiB through the host, a few hundred
    // instructions of the sink's and source's own.
    let mib = 1u32 << 20;
    let per_call = u64::from(mib).div_ceil(warden_host::LINK_BYTES_PER_FUEL);
    let ran = sink(2_000_000_000)
        .invoke("run", &json!([64, mib]))
        .await
        .unwrap();
    assert_eq!(ran.output, Output::Value(json!(64)));
    assert!(
        ran.metering.fuel_used >= 64 * per_call,
        "{} units of fuel for 64 MiB copied",
        ran.metering.fuel_used
    );
    // With fuel for less than that, the copies stop the call.
    let stopped = sink(100_000)
        .invoke("run", &json!([64, mib]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            stopped.error.innermost(),
            Error::LimitExceeded {
                kind: warden_host::LimitKind::Fuel,
                ..
            }
        ),
        "{}",
        stopped.error
    );
    assert!(
        stopped.error.to_string().contains("acme/source"),
        "{}",
        stopped.error
    );
}
