//! The solver's unit tests: resolutions and explanations over small
//! catalogs, and generated ones of thousands of releases.

use super::*;

/// One release: `("org/name", "version", &[("org/dep", "req")])`.
type Release<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A catalog of `releases`.
fn catalog(releases: &[Release<'_>]) -> Catalog {
    let mut catalog = Catalog::new();
    for (name, version, dependencies) in releases {
        let candidate = Candidate {
            version: Version::parse(version).unwrap(),
            dependencies: dependencies
                .iter()
                .map(|(d, r)| (d.to_string(), VersionReq::parse(r).unwrap()))
                .collect(),
            manifest_digest: format!("sha256:manifest-{name}-{version}"),
            component_digest: format!("sha256:component-{name}-{version}"),
        };
        match catalog
            .entry(name.to_string())
            .or_insert_with(|| Offer::Releases(Vec::new()))
        {
            Offer::Releases(list) => list.push(candidate),
            Offer::Unusable(_) => unreachable!(),
        }
    }
    catalog
}

fn chosen(result: &[Chosen]) -> Vec<String> {
    result
        .iter()
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect()
}

fn req(text: &str) -> VersionReq {
    VersionReq::parse(text).unwrap()
}

#[test]
fn a_chain_resolves_to_the_newest_versions() {
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1")]),
        ("acme/a", "1.1.0", &[("acme/b", "^1.2")]),
        ("acme/b", "1.1.0", &[("acme/c", "^2")]),
        ("acme/b", "1.2.0", &[("acme/c", "^2")]),
        ("acme/b", "2.0.0", &[]),
        ("acme/c", "2.0.0", &[]),
        ("acme/c", "2.3.1", &[]),
        ("acme/c", "3.0.0", &[]),
    ]);
    let result = solve(&catalog, "acme/a", None).unwrap();
    assert_eq!(
        chosen(&result),
        ["acme/a@1.1.0", "acme/b@1.2.0", "acme/c@2.3.1"]
    );
    assert_eq!(
        result[0].dependencies,
        BTreeMap::from([("acme/b".into(), Version::new(1, 2, 0))])
    );
    assert_eq!(result[1].component_digest, "sha256:component-acme/b-1.2.0");
    // A requirement on the root is honoured, or explained.
    assert_eq!(
        solve(&catalog, "acme/a", Some(&req("^2")))
            .unwrap_err()
            .to_string(),
        "The request is for acme/a ^2, and no approved release of acme/a matches it.\n\
         So no set of approved releases satisfies acme/a ^2."
    );
    let result = solve(&catalog, "acme/a", Some(&req("~1.0"))).unwrap();
    assert_eq!(
        chosen(&result),
        ["acme/a@1.0.0", "acme/b@1.2.0", "acme/c@2.3.1"]
    );
}

#[test]
fn a_diamond_takes_the_newest_common_version() {
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1"), ("acme/c", "^1")]),
        ("acme/b", "1.0.0", &[("acme/d", ">=1.1, <1.4")]),
        ("acme/c", "1.0.0", &[("acme/d", "^1.2")]),
        ("acme/d", "1.0.0", &[]),
        ("acme/d", "1.1.0", &[]),
        ("acme/d", "1.2.0", &[]),
        ("acme/d", "1.3.5", &[]),
        ("acme/d", "1.4.0", &[]),
    ]);
    let result = solve(&catalog, "acme/a", None).unwrap();
    assert_eq!(
        chosen(&result),
        [
            "acme/a@1.0.0",
            "acme/b@1.0.0",
            "acme/c@1.0.0",
            "acme/d@1.3.5"
        ]
    );
}

#[test]
fn backtracking_finds_an_older_version_that_fits() {
    // The newest b needs a d that c cannot take; the older b does not.
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1"), ("acme/c", "^1")]),
        ("acme/b", "1.0.0", &[("acme/d", "^1")]),
        ("acme/b", "1.1.0", &[("acme/d", "^2")]),
        ("acme/c", "1.0.0", &[("acme/d", "^1")]),
        ("acme/d", "1.0.0", &[]),
        ("acme/d", "2.0.0", &[]),
    ]);
    let result = solve(&catalog, "acme/a", None).unwrap();
    assert_eq!(
        chosen(&result),
        [
            "acme/a@1.0.0",
            "acme/b@1.0.0",
            "acme/c@1.0.0",
            "acme/d@1.0.0"
        ]
    );
}

#[test]
fn an_unsatisfiable_diamond_explains_itself() {
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1"), ("acme/c", "^1")]),
        ("acme/b", "1.0.0", &[("acme/d", "^1")]),
        ("acme/c", "1.0.0", &[("acme/d", "^2")]),
        ("acme/d", "1.0.0", &[]),
        ("acme/d", "2.0.0", &[]),
    ]);
    let explanation = solve(&catalog, "acme/a", Some(&req("^1"))).unwrap_err();
    assert_eq!(
        explanation.to_string(),
        "acme/b 1.0.0 depends on acme/d ^1.\n\
         acme/c 1.0.0 depends on acme/d ^2.\n\
         acme/a 1.0.0 depends on acme/b ^1.\n\
         acme/a 1.0.0 depends on acme/c ^1.\n\
         The request is for acme/a ^1.\n\
         So no set of approved releases satisfies acme/a ^1."
    );
}

#[test]
fn a_missing_or_yanked_dependency_falls_back_or_is_explained() {
    // b 1.1.0 was yanked (not in the catalog): 1.0.0 still satisfies ^1.
    let with_fallback = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1")]),
        ("acme/b", "1.0.0", &[]),
    ]);
    assert_eq!(
        chosen(&solve(&with_fallback, "acme/a", None).unwrap()),
        ["acme/a@1.0.0", "acme/b@1.0.0"]
    );
    // Without one: the requirement matches nothing.
    let without = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1.1")]),
        ("acme/b", "1.0.0", &[]),
    ]);
    assert_eq!(
        solve(&without, "acme/a", None).unwrap_err().to_string(),
        "acme/a 1.0.0 depends on acme/b ^1.1, and no approved release of acme/b matches it.\n\
         The request is for acme/a, any version.\n\
         So no set of approved releases satisfies acme/a."
    );
    // No release of the dependency at all.
    let absent = catalog(&[("acme/a", "1.0.0", &[("acme/b", "^1")])]);
    assert!(
        solve(&absent, "acme/a", None).unwrap_err().lines.contains(
            &"acme/a 1.0.0 depends on acme/b ^1, and no approved release of acme/b matches it."
                .to_owned()
        )
    );
}

#[test]
fn pre_releases_only_when_asked_for() {
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1")]),
        ("acme/a", "2.0.0", &[("acme/b", "^2.0.0-beta.1")]),
        ("acme/b", "1.0.0", &[]),
        ("acme/b", "1.1.0-beta.1", &[]),
        ("acme/b", "2.0.0-beta.2", &[]),
    ]);
    assert_eq!(
        chosen(&solve(&catalog, "acme/a", Some(&req("^1"))).unwrap()),
        ["acme/a@1.0.0", "acme/b@1.0.0"]
    );
    assert_eq!(
        chosen(&solve(&catalog, "acme/a", Some(&req("^2"))).unwrap()),
        ["acme/a@2.0.0", "acme/b@2.0.0-beta.2"]
    );
}

#[test]
fn an_unusable_dependency_is_named() {
    let mut catalog = catalog(&[
        ("acme/a", "1.0.0", &[("globex/b", "^1")]),
        ("acme/a", "0.9.0", &[]),
    ]);
    catalog.insert(
        "globex/b".into(),
        Offer::Unusable("is in another organization".into()),
    );
    // The older version without it is chosen...
    assert_eq!(
        chosen(&solve(&catalog, "acme/a", None).unwrap()),
        ["acme/a@0.9.0"]
    );
    // ...and without that, the reason is given.
    let explanation = solve(&catalog, "acme/a", Some(&req("^1"))).unwrap_err();
    assert_eq!(
        explanation.lines[0],
        "acme/a 1.0.0 depends on globex/b, which is in another organization."
    );
}

/// One release, 1.0.0, with `dependencies`.
fn only_release(dependencies: BTreeMap<String, VersionReq>) -> Offer {
    Offer::Releases(vec![Candidate {
        version: Version::new(1, 0, 0),
        dependencies,
        manifest_digest: String::new(),
        component_digest: String::new(),
    }])
}

/// `acme/c00000` -> `acme/c00001` -> ..., `length` plugins at 1.0.0, each
/// requiring the next at `^1`; the last requires `last` (name, requirement).
fn chain(length: usize, last: (&str, &str)) -> Catalog {
    (0..length)
        .map(|n| {
            let (next, requirement) = if n + 1 == length {
                (last.0.to_owned(), last.1)
            } else {
                (format!("acme/c{:05}", n + 1), "^1")
            };
            (
                format!("acme/c{n:05}"),
                only_release(BTreeMap::from([(next, req(requirement))])),
            )
        })
        .collect()
}

#[test]
fn a_deep_failure_is_explained_in_bounded_lines() {
    // A chain of 200 plugins whose last requirement nothing meets.
    let mut catalog = chain(200, ("acme/c00200", "^9"));
    catalog.insert("acme/c00200".into(), only_release(BTreeMap::new()));
    let explanation = solve(&catalog, "acme/c00000", None).unwrap_err();
    assert_eq!(explanation.lines.len(), MAX_FACTS + 2, "{explanation}");
    assert_eq!(
        explanation.lines[MAX_FACTS],
        format!(
            "(Up to {} more facts like these are not shown.)",
            201 - MAX_FACTS
        ),
        "{explanation}"
    );
}

#[test]
fn a_failure_at_the_end_of_a_chain_of_10000_is_answered() {
    let catalog = chain(10_000, ("acme/missing", "^1"));
    let explanation = solve(&catalog, "acme/c00000", None).unwrap_err();
    assert!(explanation.lines.len() <= MAX_FACTS + 2, "{explanation}");
}

#[test]
fn a_cycle_in_the_catalog_does_not_hang() {
    let catalog = catalog(&[
        ("acme/a", "1.0.0", &[("acme/b", "^1")]),
        ("acme/b", "1.0.0", &[("acme/a", "^1")]),
    ]);
    // Publishing refuses cycles; the solver still terminates on one.
    let result = solve(&catalog, "acme/a", None).unwrap();
    assert_eq!(chosen(&result), ["acme/a@1.0.0", "acme/b@1.0.0"]);
}

/// 10,000 releases: 1,000 plugins of 10 versions each, every plugin
/// depending on the next three with requirements that exclude the newest
/// version every fourth plugin.
fn generated() -> Catalog {
    let mut catalog = Catalog::new();
    for plugin in 0..1000_usize {
        let mut releases = Vec::new();
        for minor in 0..10 {
            let dependencies = (1..=3)
                .map(|step| plugin + step)
                .filter(|&next| next < 1000)
                .map(|next| {
                    let requirement = if next.is_multiple_of(4) {
                        ">=1.2, <1.9"
                    } else {
                        "^1"
                    };
                    (format!("acme/p{next:04}"), req(requirement))
                })
                .collect();
            releases.push(Candidate {
                version: Version::new(1, minor, 0),
                dependencies,
                manifest_digest: String::new(),
                component_digest: String::new(),
            });
        }
        catalog.insert(format!("acme/p{plugin:04}"), Offer::Releases(releases));
    }
    catalog
}

#[test]
fn a_generated_catalog_of_10000_releases_resolves_correctly() {
    let catalog = generated();
    let result = solve(&catalog, "acme/p0000", None).unwrap();
    assert_eq!(result.len(), 1000);
    for release in &result {
        let n: usize = release.name["acme/p".len()..].parse().unwrap();
        // The newest version every requirement on it allows.
        let expected = if n.is_multiple_of(4) && n != 0 { 8 } else { 9 };
        assert_eq!(
            release.version,
            Version::new(1, expected, 0),
            "{}",
            release.name
        );
        // Every dependency's chosen version satisfies the requirement.
        let Some(Offer::Releases(releases)) = catalog.get(&release.name) else {
            unreachable!()
        };
        let candidate = releases
            .iter()
            .find(|c| c.version == release.version)
            .unwrap();
        for (dependency, requirement) in &candidate.dependencies {
            assert!(requirement.matches(&release.dependencies[dependency]));
        }
    }
}
