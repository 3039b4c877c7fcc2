//! Catalog search: the org's plugins whose name or description contains a
//! text, case-insensitively, in name order. The one place where the SQL
//! differs by database, because a substring search over 100,000 rows needs an
//! index each database builds its own way (migration 4):
//!
//! - PostgreSQL: `pg_trgm` GIN indexes on `LOWER(name)` and
//!   `LOWER(description)` serve `LIKE '%text%'` directly; the planner (with
//!   custom plans, see `db.rs`) walks the name order for a common text and
//!   the trigram indexes for a rare one.
//! - SQLite: an FTS5 trigram index. It finds the org's candidates that
//!   contain every trigram of the text (at most [`CANDIDATES`]); each is
//!   checked with the same `LIKE` test. (The index is shared by all orgs, so
//!   how long the lookup takes depends a little on other orgs' rows; which
//!   rows it returns and which path is taken do not.) A text with more
//!   candidates than that walks the name order, windowed as below: its
//!   trigrams are common, but the text itself may not be (`tool-common
//!   words` has only common trigrams and may match nothing).
//!
//! A text shorter than three characters (once lowercased) has no trigram on
//! either database, so nothing but a walk of the org's rows can find it; a
//! rare one would read all of them for one page (50-90 ms at 100,000
//! plugins, and seconds under load). Such a walk reads at most
//! [`SHORT_TEXT_WINDOW`] rows per page (after finding where the window ends
//! in the `(org, name)` index): a page ends where its window does, with a
//! cursor to go on from, however few of those rows matched (even none). A
//! client that follows the cursors gets every match. On PostgreSQL a text of
//! three characters or more is one query whose plan (trigram indexes or the
//! name order) the planner chooses, given [`PLANNED_SEARCH_MS`]; past that
//! the windowed walk answers instead.
//!
//! Either way the answer is exactly the rows the `LIKE` test accepts, so both
//! databases give the same results (the catalog tests run on both).

use crate::db::{Backend, Db, is_timed_out};

/// Candidates the SQLite index may return before the search walks the name
/// order instead.
pub const CANDIDATES: i64 = 5000;

/// Trigrams of the text the SQLite index is asked for at most (spread over
/// the text; the `LIKE` test checks the rest).
const MAX_TRIGRAMS: usize = 6;

/// Rows of the org a search for a text of one or two characters reads at
/// most for one page.
pub const SHORT_TEXT_WINDOW: i64 = 5000;

/// A row of the catalog: name, description, last update.
pub type Row = (String, String, i64);

/// What a search found for one page.
#[derive(Debug, Default)]
pub struct Found {
    /// Matching rows in name order, at most the limit asked for.
    pub rows: Vec<Row>,
    /// The last name the search read, when it stopped there with rows
    /// after it left to read and fewer than the limit found: the next page
    /// starts after it.
    pub read_up_to: Option<String>,
}

impl From<Vec<Row>> for Found {
    fn from(rows: Vec<Row>) -> Found {
        Found {
            rows,
            read_up_to: None,
        }
    }
}

/// Up to `limit` plugins of `org` after `cursor` in name order whose name or
/// description contains `text` (case-insensitive; `%`, `_` and `\` are
/// plain characters). For a text shorter than three characters, on SQLite
/// for one whose trigrams are too common for the index, and on PostgreSQL
/// for one whose planned search runs past [`PLANNED_SEARCH_MS`], only among
/// the next [`SHORT_TEXT_WINDOW`] rows.
pub async fn matching(
    db: &Db,
    org: &str,
    text: &str,
    cursor: &str,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    let text = text.to_lowercase();
    let pattern = like_pattern(&text);
    let trigrams = trigrams(&text);
    if trigrams.is_empty() {
        return within_window(db, org, &pattern, cursor, limit).await;
    }
    if db.backend() == Backend::Sqlite {
        // The org's candidates only, so no other org's plugins count
        // towards the cap (CROSS JOIN: the index first, then the ids).
        let candidates: Vec<(i64,)> = sqlx::query_as(
            "SELECT i.id FROM plugin_search CROSS JOIN plugin_search_ids i
               ON i.id = plugin_search.rowid
             WHERE plugin_search MATCH $1 AND +i.org = $2 LIMIT $3",
        )
        .bind(fts_query(&trigrams))
        .bind(org)
        .bind(CANDIDATES + 1)
        .fetch_all(db.pool())
        .await?;
        if candidates.len() as i64 <= CANDIDATES {
            return Ok(among(db, org, &candidates, &pattern, cursor, limit)
                .await?
                .into());
        }
        // Common trigrams: the text itself may still be rare (the index
        // holds trigrams, not their order), so the walk is windowed too.
        return within_window(db, org, &pattern, cursor, limit).await;
    }
    planned_within(db, org, &pattern, cursor, limit).await
}

/// How long PostgreSQL may take over its own plan for a search before the
/// windowed walk answers instead.
pub const PLANNED_SEARCH_MS: u32 = 50;

/// PostgreSQL's plan for the search (trigram indexes or the name order, as
/// the planner estimates), given [`PLANNED_SEARCH_MS`]: a text of common
/// trigrams that occurs in few rows sends every row through the trigram
/// indexes' recheck, which cannot be capped the way SQLite's candidates are.
/// Past the time, the windowed walk answers.
async fn planned_within(
    db: &Db,
    org: &str,
    pattern: &str,
    cursor: &str,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    // A constant, not user text (`SET` takes no parameters).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL statement_timeout = {PLANNED_SEARCH_MS}"
    )))
    .execute(&mut *tx)
    .await?;
    match walk(&mut *tx, org, pattern, cursor, Read::Planned, limit).await {
        Ok(rows) => {
            tx.commit().await?;
            Ok(rows.into())
        }
        Err(error) if is_timed_out(&error) => {
            drop(tx);
            within_window(db, org, pattern, cursor, limit).await
        }
        Err(error) => Err(error),
    }
}

/// The windowed walk of the name order: the rows after
/// `cursor` up to the [`SHORT_TEXT_WINDOW`]th (an index range), tested with
/// `LIKE`.
async fn within_window(
    db: &Db,
    org: &str,
    pattern: &str,
    cursor: &str,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    // The window's last name, and whether any row follows it.
    let ends: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM plugins WHERE org = $1 AND name > $2 ORDER BY name LIMIT 2 OFFSET $3",
    )
    .bind(org)
    .bind(cursor)
    .bind(SHORT_TEXT_WINDOW - 1)
    .fetch_all(db.pool())
    .await?;
    let (last, more_after) = match ends.first() {
        Some((last,)) => (Some(last.clone()), ends.len() == 2),
        None => (None, false),
    };
    let rows = walk(
        db.pool(),
        org,
        pattern,
        cursor,
        Read::ByName {
            up_to: last.as_deref(),
        },
        limit,
    )
    .await?;
    let read_up_to = if (rows.len() as i64) < limit && more_after {
        last
    } else {
        None
    };
    Ok(Found { rows, read_up_to })
}

/// How [`walk`] reads the rows.
enum Read<'a> {
    /// As the database plans it: PostgreSQL may use its trigram indexes.
    Planned,
    /// In name order, up to `up_to` if given, never through a trigram
    /// index (which on PostgreSQL, taken for a text the planner thinks
    /// rare, would recheck every row of every org: the cost the window
    /// exists to bound). The test is on `LOWER(..) || ''`, an expression
    /// no index serves.
    ByName { up_to: Option<&'a str> },
}

/// Up to `limit` rows of `org` after `cursor` in name order that pass the
/// `LIKE` test, read as `read` says.
async fn walk<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Any>,
    org: &str,
    pattern: &str,
    cursor: &str,
    read: Read<'_>,
    limit: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    let (bound, tested, up_to) = match read {
        Read::Planned => ("", "", None),
        Read::ByName { up_to: None } => ("", " || ''", None),
        Read::ByName { up_to: Some(up_to) } => ("AND name <= $5", " || ''", Some(up_to)),
    };
    let sql = format!(
        "SELECT name, description, updated_at FROM plugins
         WHERE org = $1 AND name > $2 {bound}
           AND (LOWER(name){tested} LIKE $3 ESCAPE '\\'
                OR LOWER(description){tested} LIKE $3 ESCAPE '\\')
         ORDER BY name LIMIT $4"
    );
    // One of three fixed texts, no user text.
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(cursor)
        .bind(pattern)
        .bind(limit);
    match up_to {
        Some(up_to) => query.bind(up_to),
        None => query,
    }
    .fetch_all(on)
    .await
}

/// The rows among the SQLite index's candidates that pass the test.
async fn among(
    db: &Db,
    org: &str,
    candidates: &[(i64,)],
    pattern: &str,
    cursor: &str,
    limit: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = candidates.iter().map(|(id,)| id.to_string()).collect();
    // Integers the index returned, not user text. The candidates' names
    // are sorted from the small ids table first (`LIMIT -1` keeps SQLite
    // from merging the subquery), so only the org's rows are read whole.
    let sql = format!(
        "SELECT p.name, p.description, p.updated_at
         FROM (SELECT org, name FROM plugin_search_ids
               WHERE id IN ({}) AND +org = $1 AND +name > $2 ORDER BY name LIMIT -1) c
         CROSS JOIN plugins p ON p.org = c.org AND p.name = c.name
         WHERE LOWER(p.name) LIKE $3 ESCAPE '\\' OR LOWER(p.description) LIKE $3 ESCAPE '\\'
         ORDER BY c.name LIMIT $4",
        ids.join(",")
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org)
        .bind(cursor)
        .bind(pattern)
        .bind(limit)
        .fetch_all(db.pool())
        .await
}

/// `%text%` with `\`, `%` and `_` escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The distinct trigrams (three characters) of `text`, at most
/// [`MAX_TRIGRAMS`] spread evenly over it.
fn trigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut all: Vec<String> = Vec::new();
    for window in chars.windows(3) {
        let trigram: String = window.iter().collect();
        if !all.contains(&trigram) {
            all.push(trigram);
        }
    }
    if all.len() <= MAX_TRIGRAMS {
        return all;
    }
    let last = all.len() - 1;
    (0..MAX_TRIGRAMS)
        .map(|k| all[k * last / (MAX_TRIGRAMS - 1)].clone())
        .collect()
}

/// An FTS5 query that every one of `trigrams` must match: each a quoted
/// string (a `"` doubled), joined with AND.
fn fts_query(trigrams: &[String]) -> String {
    trigrams
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigrams_are_distinct_and_spread_over_the_text() {
        assert_eq!(trigrams("ab"), Vec::<String>::new());
        assert_eq!(trigrams("abc"), vec!["abc"]);
        assert_eq!(trigrams("aaaa"), vec!["aaa"]);
        assert_eq!(trigrams("tool-099999").len(), MAX_TRIGRAMS);
        let spread = trigrams("abcdefghijklmnop");
        assert_eq!(spread.first().map(String::as_str), Some("abc"));
        assert_eq!(spread.last().map(String::as_str), Some("nop"));
        assert_eq!(trigrams("é€ü"), vec!["é€ü"], "characters, not bytes");
    }

    #[test]
    fn fts_queries_quote_every_trigram() {
        assert_eq!(
            fts_query(&["a\"b".to_owned(), "cde".to_owned()]),
            "\"a\"\"b\" AND \"cde\""
        );
    }

    #[test]
    fn like_wildcards_are_plain_characters() {
        assert_eq!(like_pattern("100%_\\"), "%100\\%\\_\\\\%");
    }
}
