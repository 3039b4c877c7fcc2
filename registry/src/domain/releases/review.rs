//! What a release changes against its plugin's last approved release,
//! beyond capabilities and limits: the functions added, removed or changed
//! (and whether that breaks callers without a major version bump), the
//! dependencies added, removed or moved, and the size. Pure: `show` reads
//! both releases and calls [`compare`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_host::FunctionInfo;

/// A function whose signature changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionChange {
    /// The function, e.g. `greet` or `text.count`.
    pub name: String,
    /// Its WIT signature in the version compared against.
    pub was: String,
    /// Its WIT signature now.
    pub now: String,
}

/// A dependency whose requirement changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DependencyMove {
    /// `org/name`.
    pub name: String,
    /// The requirement in the version compared against.
    pub from: String,
    /// The requirement now.
    pub to: String,
}

/// The interface, dependencies and size against the last approved version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseChanges {
    /// The version compared against (`null`: no approved version yet, so
    /// every function and dependency is new).
    pub against: Option<String>,
    /// Functions exported now and not before.
    pub functions_added: Vec<String>,
    /// Functions exported before and not now.
    pub functions_removed: Vec<String>,
    /// Functions whose signature changed.
    pub functions_changed: Vec<FunctionChange>,
    /// A function was removed or changed, yet the major version was not
    /// bumped (for `0.y.z`, the minor; for `0.0.z`, any change): callers
    /// that ask for a compatible version can break.
    pub breaks_without_major_bump: bool,
    /// Dependencies declared now and not before, with their requirements.
    pub dependencies_added: BTreeMap<String, String>,
    /// Dependencies declared before and not now, with their requirements.
    pub dependencies_removed: BTreeMap<String, String>,
    /// Dependencies whose requirement changed.
    pub dependencies_moved: Vec<DependencyMove>,
    /// The component's size in bytes in the version compared against.
    pub previous_size: Option<i64>,
}

/// One side of the comparison.
pub struct Side<'a> {
    /// Its version.
    pub version: &'a str,
    /// Its exported functions.
    pub functions: &'a [FunctionInfo],
    /// Its dependencies with their requirements.
    pub dependencies: &'a BTreeMap<String, String>,
    /// Its component's size in bytes.
    pub size: i64,
}

/// What `now` changes against `before` (`None`: nothing approved before).
pub fn compare(before: Option<&Side<'_>>, now: &Side<'_>) -> ReleaseChanges {
    let signatures = |side: &Side<'_>| -> BTreeMap<String, String> {
        side.functions
            .iter()
            .map(|f| (f.name.clone(), f.signature.clone()))
            .collect()
    };
    let now_functions = signatures(now);
    let Some(before) = before else {
        return ReleaseChanges {
            against: None,
            functions_added: now_functions.into_keys().collect(),
            functions_removed: Vec::new(),
            functions_changed: Vec::new(),
            breaks_without_major_bump: false,
            dependencies_added: now.dependencies.clone(),
            dependencies_removed: BTreeMap::new(),
            dependencies_moved: Vec::new(),
            previous_size: None,
        };
    };
    let before_functions = signatures(before);
    let functions_added = only_in(&now_functions, &before_functions)
        .into_keys()
        .collect();
    let functions_removed: Vec<String> = only_in(&before_functions, &now_functions)
        .into_keys()
        .collect();
    let functions_changed: Vec<FunctionChange> = now_functions
        .iter()
        .filter_map(|(name, signature)| {
            let was = before_functions.get(name)?;
            (was != signature).then(|| FunctionChange {
                name: name.clone(),
                was: was.clone(),
                now: signature.clone(),
            })
        })
        .collect();
    let breaking = !functions_removed.is_empty() || !functions_changed.is_empty();
    ReleaseChanges {
        against: Some(before.version.to_owned()),
        functions_added,
        functions_removed,
        functions_changed,
        breaks_without_major_bump: breaking && !allows_breaking(before.version, now.version),
        dependencies_added: only_in(now.dependencies, before.dependencies),
        dependencies_removed: only_in(before.dependencies, now.dependencies),
        dependencies_moved: now
            .dependencies
            .iter()
            .filter_map(|(name, to)| {
                let from = before.dependencies.get(name)?;
                (from != to).then(|| DependencyMove {
                    name: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                })
            })
            .collect(),
        previous_size: Some(before.size),
    }
}

/// The entries of `a` whose keys `b` lacks.
fn only_in(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.iter()
        .filter(|(key, _)| !b.contains_key(*key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Whether going from `before` to `now` may break callers under semver's
/// caret rule: a major bump, or the minor for `0.y`, or any version for
/// `0.0.z`. A version that does not parse allows nothing.
fn allows_breaking(before: &str, now: &str) -> bool {
    let (Ok(before), Ok(now)) = (semver::Version::parse(before), semver::Version::parse(now))
    else {
        return false;
    };
    match (before.major, before.minor) {
        (0, 0) => now.major > 0 || now.minor > 0 || now.patch != before.patch,
        (0, minor) => now.major > 0 || now.minor > minor,
        (major, _) => now.major > major,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, signature: &str) -> FunctionInfo {
        FunctionInfo {
            name: name.to_owned(),
            interface: None,
            params: Vec::new(),
            result: None,
            signature: signature.to_owned(),
            not_invocable: None,
            schema: None,
        }
    }

    fn side<'a>(
        version: &'a str,
        functions: &'a [FunctionInfo],
        dependencies: &'a BTreeMap<String, String>,
    ) -> Side<'a> {
        Side {
            version,
            functions,
            dependencies,
            size: 1000,
        }
    }

    fn deps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn functions_and_dependencies_are_compared_by_name() {
        let before_functions = [
            function("greet", "func(name: string) -> string"),
            function("count", "func(text: string) -> u32"),
            function("old", "func()"),
        ];
        let now_functions = [
            function("greet", "func(name: string) -> string"),
            function("count", "func(text: string) -> u64"),
            function("new", "func()"),
        ];
        let before_deps = deps(&[("acme/a", "^1"), ("acme/b", "^1"), ("acme/gone", "^2")]);
        let now_deps = deps(&[("acme/a", "^1"), ("acme/b", "^1.4"), ("acme/c", "^0.3")]);
        let changes = compare(
            Some(&side("1.2.0", &before_functions, &before_deps)),
            &Side {
                size: 1500,
                ..side("1.3.0", &now_functions, &now_deps)
            },
        );
        assert_eq!(changes.against.as_deref(), Some("1.2.0"));
        assert_eq!(changes.functions_added, ["new"]);
        assert_eq!(changes.functions_removed, ["old"]);
        assert_eq!(
            changes.functions_changed,
            [FunctionChange {
                name: "count".into(),
                was: "func(text: string) -> u32".into(),
                now: "func(text: string) -> u64".into(),
            }]
        );
        assert!(changes.breaks_without_major_bump);
        assert_eq!(changes.dependencies_added, deps(&[("acme/c", "^0.3")]));
        assert_eq!(changes.dependencies_removed, deps(&[("acme/gone", "^2")]));
        assert_eq!(
            changes.dependencies_moved,
            [DependencyMove {
                name: "acme/b".into(),
                from: "^1".into(),
                to: "^1.4".into(),
            }]
        );
        assert_eq!(changes.previous_size, Some(1000));
    }

    #[test]
    fn a_removed_function_breaks_only_without_a_major_bump() {
        let before = [function("greet", "func()"), function("old", "func()")];
        let now = [function("greet", "func()")];
        let none = BTreeMap::new();
        let breaks = |from: &str, to: &str| {
            compare(Some(&side(from, &before, &none)), &side(to, &now, &none))
                .breaks_without_major_bump
        };
        assert!(breaks("1.2.0", "1.3.0"));
        assert!(breaks("1.2.0", "1.2.1"));
        assert!(!breaks("1.2.0", "2.0.0"));
        assert!(breaks("0.3.0", "0.3.9"));
        assert!(!breaks("0.3.0", "0.4.0"));
        assert!(!breaks("0.0.3", "0.0.4"));
        // Only adding functions breaks nobody, whatever the version.
        let added = compare(
            Some(&side("1.2.0", &now, &none)),
            &side("1.2.1", &before, &none),
        );
        assert!(!added.breaks_without_major_bump);
        assert_eq!(added.functions_added, ["old"]);
    }

    #[test]
    fn without_an_approved_version_everything_is_new() {
        let now = [function("greet", "func()")];
        let now_deps = deps(&[("acme/a", "^1")]);
        let changes = compare(None, &side("1.0.0", &now, &now_deps));
        assert_eq!(changes.against, None);
        assert_eq!(changes.functions_added, ["greet"]);
        assert_eq!(changes.dependencies_added, now_deps);
        assert!(!changes.breaks_without_major_bump);
        assert_eq!(changes.previous_size, None);
    }
}
