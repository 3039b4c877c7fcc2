//! Dependency resolution over generated catalogs of 10,000 releases, in
//! memory (the part of `/resolve` after the database read):
//! `cargo bench -p warden-registry --bench resolve`.
//!
//! - `wide`: 1,000 plugins of 10 versions; each depends on the next three,
//!   every fourth with a requirement that excludes its newest version; the
//!   root reaches all 1,000.
//! - `backtracking`: 500 plugins of 20 versions in pairs; the newest version
//!   of each even plugin needs a version of its partner that the root
//!   excludes, so each pair is resolved by stepping back.
//! - `unsatisfiable`: the wide catalog with one requirement no release meets,
//!   deep in the graph: the time to find and explain the failure.

use criterion::{Criterion, criterion_group, criterion_main};
use semver::{Version, VersionReq};
use std::hint::black_box;
use warden_registry::resolver::{Candidate, Catalog, Offer, solve};

fn req(text: &str) -> VersionReq {
    VersionReq::parse(text).unwrap()
}

fn candidate(version: Version, dependencies: Vec<(String, VersionReq)>) -> Candidate {
    Candidate {
        version,
        dependencies: dependencies.into_iter().collect(),
        manifest_digest: String::new(),
        component_digest: String::new(),
    }
}

fn wide(broken_at: Option<usize>) -> Catalog {
    let mut catalog = Catalog::new();
    for plugin in 0..1000_usize {
        let releases = (0..10)
            .map(|minor| {
                let dependencies = (1..=3)
                    .map(|step| plugin + step)
                    .filter(|&next| next < 1000)
                    .map(|next| {
                        let requirement = if Some(next) == broken_at {
                            "^7"
                        } else if next.is_multiple_of(4) {
                            ">=1.2, <1.9"
                        } else {
                            "^1"
                        };
                        (format!("acme/p{next:04}"), req(requirement))
                    })
                    .collect();
                candidate(Version::new(1, minor, 0), dependencies)
            })
            .collect();
        catalog.insert(format!("acme/p{plugin:04}"), Offer::Releases(releases));
    }
    catalog
}

fn backtracking() -> Catalog {
    let mut catalog = Catalog::new();
    let pairs = 250;
    let root_dependencies: Vec<(String, VersionReq)> = (0..pairs * 2)
        .map(|n| {
            (
                format!("acme/q{n:04}"),
                req(if n % 2 == 1 { "<1.15" } else { "^1" }),
            )
        })
        .collect();
    catalog.insert(
        "acme/root".into(),
        Offer::Releases(vec![candidate(Version::new(1, 0, 0), root_dependencies)]),
    );
    for n in 0..pairs * 2 {
        let releases = (0..20)
            .map(|minor| {
                let dependencies = if n % 2 == 0 {
                    // Needs its partner at >= 1.<minor>: only minors < 15 fit.
                    vec![(format!("acme/q{:04}", n + 1), req(&format!(">=1.{minor}")))]
                } else {
                    Vec::new()
                };
                candidate(Version::new(1, minor, 0), dependencies)
            })
            .collect();
        catalog.insert(format!("acme/q{n:04}"), Offer::Releases(releases));
    }
    catalog
}

fn resolve(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve 10,000 releases");
    let catalog = wide(None);
    assert_eq!(solve(&catalog, "acme/p0000", None).unwrap().len(), 1000);
    group.bench_function("wide (1,000 plugins reached)", |b| {
        b.iter(|| black_box(solve(&catalog, "acme/p0000", None).unwrap()))
    });
    let catalog = backtracking();
    let chosen = solve(&catalog, "acme/root", None).unwrap();
    assert!(chosen.iter().any(|c| c.version == Version::new(1, 14, 0)));
    group.bench_function("backtracking (250 pairs stepped back)", |b| {
        b.iter(|| black_box(solve(&catalog, "acme/root", None).unwrap()))
    });
    let catalog = wide(Some(900));
    assert!(solve(&catalog, "acme/p0000", None).is_err());
    group.bench_function("unsatisfiable, explained", |b| {
        b.iter(|| black_box(solve(&catalog, "acme/p0000", None).unwrap_err()))
    });
    group.finish();
}

criterion_group!(benches, resolve);
criterion_main!(benches);
