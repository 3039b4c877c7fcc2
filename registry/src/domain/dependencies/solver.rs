//! Version solving with PubGrub over a catalog held in memory: the newest
//! versions that satisfy every requirement transitively, one version per
//! plugin, or an explanation in sentences of why none exist.
//!
//! A semver requirement becomes the set of the plugin's available versions
//! that match it (`VersionReq::matches`, so pre-releases only when the
//! requirement names one), which is all PubGrub needs to know; the
//! requirement's own text is kept for the explanation.

use pubgrub::{
    DefaultStringReporter, DependencyProvider, DerivationTree, External,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};
use semver::{Version, VersionReq};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// One approved release that may be chosen.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its version.
    pub version: Version,
    /// What it declares: `org/name` -> requirement.
    pub dependencies: BTreeMap<String, VersionReq>,
    /// `sha256:` of its OCI manifest.
    pub manifest_digest: String,
    /// `sha256:` of its component.
    pub component_digest: String,
}

/// What a plugin offers the solver.
#[derive(Clone, Debug)]
pub enum Offer {
    /// Its approved, non-yanked releases, any order.
    Releases(Vec<Candidate>),
    /// It cannot be used at all, and why (in another organization, ...).
    Unusable(String),
}

/// The releases the solver may choose from, by `org/name`. A plugin that is
/// not in it has no approved release.
pub type Catalog = HashMap<String, Offer>;

/// One release of the resolved set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// `org/name`.
    pub name: String,
    /// The chosen version.
    pub version: Version,
    /// `sha256:` of its OCI manifest.
    pub manifest_digest: String,
    /// `sha256:` of its component.
    pub component_digest: String,
    /// Its dependencies, `org/name` -> the chosen version.
    pub dependencies: BTreeMap<String, Version>,
}

/// Why no set of releases satisfies a request: one sentence per fact that
/// takes part in the conflict, then the conclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolvable {
    /// The sentences, in order.
    pub lines: Vec<String>,
    /// Whether this is the catalog's answer (a proof that none exists, or
    /// the resolver's whole time spent in vain), as opposed to a resolver
    /// that stopped early (a low budget) or failed (could not start,
    /// panicked): only a conclusive answer may be remembered.
    pub conclusive: bool,
}

impl fmt::Display for Unresolvable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

/// A node of the dependency graph: the request itself, or a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Node {
    Request,
    Plugin(String),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Request => f.write_str("the request"),
            Node::Plugin(name) => f.write_str(name),
        }
    }
}

type Set = Ranges<Version>;

/// The most facts an explanation lists; the rest are counted.
pub const MAX_FACTS: usize = 40;

/// The longest a resolution may take before it gives up (a catalog can be
/// built to make PubGrub work hard).
pub const MAX_RESOLVE_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the solver stopped without an answer: it ran for this long.
#[derive(Debug, thiserror::Error)]
#[error("the resolution was stopped after {} ms without an answer", .0.as_millis())]
pub struct GaveUp(std::time::Duration);

struct Provider<'a> {
    catalog: &'a Catalog,
    /// Each plugin's releases, oldest first.
    sorted: HashMap<&'a str, Vec<&'a Candidate>>,
    started: std::time::Instant,
    /// How long it may run.
    limit: std::time::Duration,
    /// The request: the plugin and its requirement (any version without one).
    root: (String, Option<VersionReq>),
}

impl<'a> Provider<'a> {
    fn new(
        catalog: &'a Catalog,
        name: &str,
        requirement: Option<&VersionReq>,
        limit: std::time::Duration,
    ) -> Provider<'a> {
        let sorted = catalog
            .iter()
            .map(|(name, offer)| {
                let mut releases: Vec<&Candidate> = match offer {
                    Offer::Releases(releases) => releases.iter().collect(),
                    Offer::Unusable(_) => Vec::new(),
                };
                releases.sort_by(|a, b| a.version.cmp(&b.version));
                releases.dedup_by(|a, b| a.version == b.version);
                (name.as_str(), releases)
            })
            .collect();
        Provider {
            catalog,
            sorted,
            started: std::time::Instant::now(),
            limit,
            root: (name.to_owned(), requirement.cloned()),
        }
    }

    /// The releases of `name`, oldest first.
    fn releases(&self, name: &str) -> &[&'a Candidate] {
        self.sorted.get(name).map_or(&[], Vec::as_slice)
    }

    /// The versions of `name` that `requirement` accepts, as a set: each run
    /// of consecutive matching releases is one interval from its first
    /// version up to the next release's, so sets stay small and releases
    /// with the same dependencies merge in PubGrub's bookkeeping.
    fn matching(&self, name: &str, requirement: Option<&VersionReq>) -> Set {
        let releases = self.releases(name);
        let accepts = |c: &Candidate| requirement.is_none_or(|r| r.matches(&c.version));
        let mut set = Set::empty();
        let mut index = 0;
        while index < releases.len() {
            if !accepts(releases[index]) {
                index += 1;
                continue;
            }
            let first = &releases[index].version;
            while index < releases.len() && accepts(releases[index]) {
                index += 1;
            }
            let run = match releases.get(index) {
                Some(next) => Set::between(first.clone(), next.version.clone()),
                None => Set::higher_than(first.clone()),
            };
            set = set.union(&run);
        }
        set
    }

    fn candidate(&self, name: &str, version: &Version) -> Option<&'a Candidate> {
        let releases = self.releases(name);
        releases
            .binary_search_by(|c| c.version.cmp(version))
            .ok()
            .map(|at| releases[at])
    }

    /// The available versions of `name` in `set`, newest first.
    fn versions_in(&self, name: &str, set: &Set) -> Vec<Version> {
        self.releases(name)
            .iter()
            .rev()
            .map(|c| c.version.clone())
            .filter(|v| set.contains(v))
            .collect()
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Version;
    type VS = Set;
    type M = String;
    type Err = GaveUp;
    /// Fewest matching versions first: conflicts show up sooner.
    type Priority = std::cmp::Reverse<usize>;

    fn should_cancel(&self) -> Result<(), GaveUp> {
        if self.started.elapsed() > self.limit {
            Err(GaveUp(self.limit))
        } else {
            Ok(())
        }
    }

    fn prioritize(
        &self,
        package: &Node,
        range: &Set,
        _: &PackageResolutionStatistics,
    ) -> Self::Priority {
        match package {
            Node::Request => std::cmp::Reverse(0),
            Node::Plugin(name) => std::cmp::Reverse(
                self.releases(name)
                    .iter()
                    .filter(|c| range.contains(&c.version))
                    .count(),
            ),
        }
    }

    fn choose_version(&self, package: &Node, range: &Set) -> Result<Option<Version>, Self::Err> {
        Ok(match package {
            Node::Request => Some(Version::new(0, 0, 0)).filter(|v| range.contains(v)),
            Node::Plugin(name) => self
                .releases(name)
                .iter()
                .rev()
                .find(|c| range.contains(&c.version))
                .map(|c| c.version.clone()),
        })
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Version,
    ) -> Result<pubgrub::Dependencies<Node, Set, String>, Self::Err> {
        let (name, requirements): (_, Vec<(&String, Option<&VersionReq>)>) = match package {
            Node::Request => (None, vec![(&self.root.0, self.root.1.as_ref())]),
            Node::Plugin(name) => {
                let Some(candidate) = self.candidate(name, version) else {
                    return Ok(pubgrub::Dependencies::Unavailable(
                        "is not an approved release".into(),
                    ));
                };
                (
                    Some(name),
                    candidate
                        .dependencies
                        .iter()
                        .map(|(dependency, requirement)| (dependency, Some(requirement)))
                        .collect(),
                )
            }
        };
        let mut constraints = pubgrub::DependencyConstraints::default();
        for (dependency, requirement) in requirements {
            if Some(dependency) == name {
                return Ok(pubgrub::Dependencies::Unavailable(format!(
                    "depends on itself ({dependency})"
                )));
            }
            if let Some(Offer::Unusable(why)) = self.catalog.get(dependency) {
                return Ok(pubgrub::Dependencies::Unavailable(format!(
                    "depends on {dependency}, which {why}"
                )));
            }
            constraints.insert(
                Node::Plugin(dependency.clone()),
                self.matching(dependency, requirement),
            );
        }
        Ok(pubgrub::Dependencies::Available(constraints))
    }
}

/// Resolves `name` (at `requirement`, or any version) against `catalog`:
/// the releases chosen, the requested plugin first, then the others in the
/// order they are first depended on.
///
/// It runs on a thread of its own with a large stack: PubGrub's derivation
/// trees are as deep as the dependency chains, and parts of PubGrub (and
/// dropping a tree) recurse over them.
pub fn solve(
    catalog: &Catalog,
    name: &str,
    requirement: Option<&VersionReq>,
) -> Result<Vec<Chosen>, Unresolvable> {
    solve_within(catalog, name, requirement, MAX_RESOLVE_TIME)
}

/// [`solve`], giving up after `limit` (at most [`MAX_RESOLVE_TIME`]).
pub fn solve_within(
    catalog: &Catalog,
    name: &str,
    requirement: Option<&VersionReq>,
    limit: std::time::Duration,
) -> Result<Vec<Chosen>, Unresolvable> {
    let limit = limit.min(MAX_RESOLVE_TIME);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("warden-resolve".into())
            .stack_size(SOLVER_STACK_BYTES)
            .spawn_scoped(scope, || solve_here(catalog, name, requirement, limit))
            .map_err(|e| Unresolvable {
                lines: vec![format!("The resolver could not start: {e}.")],
                conclusive: false,
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(Unresolvable {
                    lines: vec!["The resolver failed.".into()],
                    conclusive: false,
                })
            })
    })
}

/// The stack of the resolver's thread (address space; only what is used is
/// backed by memory).
const SOLVER_STACK_BYTES: usize = 256 << 20;

fn solve_here(
    catalog: &Catalog,
    name: &str,
    requirement: Option<&VersionReq>,
    limit: std::time::Duration,
) -> Result<Vec<Chosen>, Unresolvable> {
    let provider = Provider::new(catalog, name, requirement, limit);
    let selected = match pubgrub::resolve(&provider, Node::Request, Version::new(0, 0, 0)) {
        Ok(selected) => selected,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(explain(&provider, &tree));
        }
        Err(PubGrubError::ErrorInShouldCancel(gave_up)) => {
            return Err(Unresolvable {
                lines: vec![format!(
                    "{}: the requirements of the releases involved are too tangled to resolve.",
                    capitalized(&gave_up.to_string())
                )],
                // Its whole time, not a budget running low: as good an
                // answer as this catalog will get until it changes.
                conclusive: limit >= MAX_RESOLVE_TIME,
            });
        }
        Err(other) => {
            return Err(Unresolvable {
                lines: vec![format!("The resolver failed: {other}.")],
                conclusive: false,
            });
        }
    };
    // The requested plugin first, then breadth first along the dependencies.
    let mut order = vec![name.to_owned()];
    let mut chosen = Vec::new();
    let mut next = 0;
    while let Some(current) = order.get(next).cloned() {
        next += 1;
        let Some(version) = selected.get(&Node::Plugin(current.clone())) else {
            continue;
        };
        let candidate = provider
            .candidate(&current, version)
            .expect("the solver chose an available version");
        let dependencies: BTreeMap<String, Version> = candidate
            .dependencies
            .keys()
            .filter_map(|d| Some((d.clone(), selected.get(&Node::Plugin(d.clone()))?.clone())))
            .collect();
        for dependency in dependencies.keys() {
            if !order.contains(dependency) {
                order.push(dependency.clone());
            }
        }
        chosen.push(Chosen {
            name: current,
            version: version.clone(),
            manifest_digest: candidate.manifest_digest.clone(),
            component_digest: candidate.component_digest.clone(),
            dependencies,
        });
    }
    Ok(chosen)
}

/// The facts of a failed resolution, one sentence each, in the order the
/// derivation meets them, and the conclusion.
fn explain(provider: &Provider<'_>, tree: &DerivationTree<Node, Set, String>) -> Unresolvable {
    let mut lines = facts(provider, tree);
    if lines.is_empty() {
        // Not expected; PubGrub's own report is better than nothing.
        lines.push(DefaultStringReporter::report(tree));
    }
    let request = match &provider.root.1 {
        Some(requirement) => format!("{} {requirement}", provider.root.0),
        None => provider.root.0.clone(),
    };
    lines.push(format!(
        "So no set of approved releases satisfies {request}."
    ));
    Unresolvable {
        lines,
        conclusive: true,
    }
}

/// The external facts of `tree`, each once, in the order a depth-first walk
/// meets them (first cause first), at most [`MAX_FACTS`] of them. The walk
/// is iterative and visits a shared subtree once: a derivation can be
/// thousands of levels deep and share most of its subtrees.
fn facts(provider: &Provider<'_>, tree: &DerivationTree<Node, Set, String>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut shared_done = std::collections::HashSet::new();
    let mut omitted = 0usize;
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        match node {
            DerivationTree::Derived(derived) => {
                if let Some(id) = derived.shared_id
                    && !shared_done.insert(id)
                {
                    continue;
                }
                stack.push(&derived.cause2);
                stack.push(&derived.cause1);
            }
            DerivationTree::External(External::NotRoot(..)) => {}
            // Past the cap, facts are counted, not written.
            DerivationTree::External(_) if lines.len() >= MAX_FACTS => omitted += 1,
            DerivationTree::External(external) => {
                if let Some(line) = fact(provider, external)
                    && seen.insert(line.clone())
                {
                    lines.push(line);
                }
            }
        }
    }
    if omitted > 0 {
        lines.push(format!(
            "(Up to {omitted} more facts like these are not shown.)"
        ));
    }
    lines
}

fn fact(provider: &Provider<'_>, external: &External<Node, Set, String>) -> Option<String> {
    match external {
        External::NotRoot(..) => None,
        External::NoVersions(Node::Request, _) => None,
        // "No versions in this range" closes the gaps between releases; it
        // says something to a person only when a plugin has no release at all.
        External::NoVersions(Node::Plugin(name), _) => match provider.catalog.get(name) {
            Some(Offer::Unusable(why)) => Some(format!("{name} {why}.")),
            _ if provider.releases(name).is_empty() => {
                Some(format!("{name} has no approved release."))
            }
            _ => None,
        },
        External::FromDependencyOf(Node::Request, _, Node::Plugin(name), set) => {
            let asked = match &provider.root.1 {
                Some(requirement) => format!("The request is for {name} {requirement}"),
                None => format!("The request is for {name}, any version"),
            };
            Some(if provider.versions_in(name, set).is_empty() {
                format!("{asked}, and no approved release of {name} matches it.")
            } else {
                format!("{asked}.")
            })
        }
        External::FromDependencyOf(Node::Plugin(dependent), versions, Node::Plugin(name), set) => {
            let chosen = provider.versions_in(dependent, versions);
            let requirement = chosen
                .iter()
                .filter_map(|v| provider.candidate(dependent, v)?.dependencies.get(name))
                .map(ToString::to_string)
                .fold(Vec::<String>::new(), |mut texts, text| {
                    if !texts.contains(&text) {
                        texts.push(text);
                    }
                    texts
                })
                .join(" or ");
            let none_match = provider.versions_in(name, set).is_empty();
            Some(format!(
                "{dependent} {} depends on {name} {requirement}{}.",
                list(&chosen),
                if none_match {
                    format!(", and no approved release of {name} matches it")
                } else {
                    String::new()
                }
            ))
        }
        External::FromDependencyOf(..) => None,
        External::Custom(Node::Plugin(name), versions, why) => Some(format!(
            "{name} {} {why}.",
            list(&provider.versions_in(name, versions))
        )),
        External::Custom(Node::Request, _, why) => Some(format!("The request {why}.")),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `1.0.0`, `1.0.0 and 1.1.0`, `1.0.0, 1.1.0 and 1.2.0`, oldest first;
/// more than five as the first three, the last and the count.
fn list(versions: &[Version]) -> String {
    if versions.len() > 5 {
        let oldest: Vec<String> = versions
            .iter()
            .rev()
            .take(3)
            .map(ToString::to_string)
            .collect();
        return format!(
            "{}, ... and {} ({} versions)",
            oldest.join(", "),
            versions[0],
            versions.len()
        );
    }
    let mut texts: Vec<String> = versions.iter().rev().map(ToString::to_string).collect();
    match texts.len() {
        0 => "(no version)".into(),
        1 => texts.remove(0),
        _ => {
            let last = texts.pop().unwrap_or_default();
            format!("{} and {last}", texts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests;
