//! Listings that fit the bucket: every object below an area of the tree,
//! listed flat, in as few pages as the keys need, cut where the keys are.
//!
//! A first page of the area comes first: on a small registry it is the
//! whole area (one LIST). When there is more, the area's "directory" is
//! listed with a delimiter (one LIST gives up to a page of children) and
//! cut into parts, each a key prefix, by what the two say: children wholly
//! in the first page are taken from it; the others are grouped, by the
//! characters their names start with, into parts of about a page each,
//! sized by the children the first page counted. Each part is listed the
//! same way, at once with the others, so a part that turns out large (one
//! repository holding half the keys) is cut again where its own keys are,
//! and a skewed tree spreads over as many listings as it has pages. The
//! layout says where cutting is worth it ([`crate::storage::Area`]):
//! below that, a directory is paged through whole. Parts are key prefixes,
//! never "start after" offsets, so the same cuts work on every store (Azure
//! lists by prefix only).
//!
//! A page that breaks off (a connection lost in the middle of an answer,
//! which `object_store` does not retry) is asked for again with the same
//! continuation token, up to 4 times with backoff; then the
//! listing fails, never returning part of an area.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore};

use super::compact::Run;
use super::Obj;
use crate::error::Failure;

/// At most this many listing requests in flight at once.
pub(super) const LIST_CONCURRENCY: usize = 32;

/// Attempts at a listing page that breaks off.
pub(super) const LIST_TRIES: u32 = 4;

/// Why a listing failed, and what kind of failure it was.
#[derive(Debug)]
pub(super) struct Failed {
    pub failure: Failure,
    pub message: String,
}

impl Failed {
    pub(super) fn of(e: &object_store::Error) -> Failed {
        Failed {
            failure: super::failure_of(e),
            message: e.to_string(),
        }
    }
}

/// An area's objects, as runs of sorted objects (one per part listed).
type Found = Result<Vec<Run>, Failed>;

/// What a listed object is kept as: its key relative to the registry's
/// `v2` and what the listing says of it (`None`: not below `v2`).
pub(super) type Convert<'a> = dyn Fn(&ObjectMeta) -> Option<(String, Obj)> + Sync + 'a;

/// One listing page: the objects, the child "directories" (with a
/// delimiter, each ending in `/`), the token of the next page.
struct Page {
    objects: Vec<ObjectMeta>,
    dirs: Vec<String>,
    next: Option<String>,
}

/// Lists through a store's paginated listing, cutting as it goes.
pub(super) struct Lister<'a> {
    pub pages: Arc<dyn PaginatedListStore>,
    /// Bounds the requests in flight.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// Bounds the listings that hold a first page while they find where to
    /// cut (a page decoded is ~250 bytes an object). Without it, nested
    /// cuts held ~130 pages, 32 MB, at 1M objects (issue 18). Taken before
    /// the first page and given back before a listing waits on others, so
    /// no listing holding one waits for another.
    pub cutting: Arc<tokio::sync::Semaphore>,
    /// Whether the directory (a full key prefix ending in `/`) may be cut
    /// into listings of its children (the layout's [`crate::storage::Area`]).
    pub split: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// Each object as it is kept, page by page as they come (no page is
    /// kept longer than it takes to encode it).
    pub convert: &'a Convert<'a>,
}

impl Lister<'_> {
    /// `objects` (in any order) as one run.
    fn run_of<'o>(&self, objects: impl IntoIterator<Item = &'o ObjectMeta>) -> Run {
        Run::of(objects.into_iter().filter_map(|m| (self.convert)(m)).collect())
    }

    /// One page of the keys starting with `prefix` (a raw prefix, not
    /// necessarily a directory), tried again when it breaks off.
    async fn page(&self, prefix: &str, delimited: bool, token: Option<String>) -> Result<Page, Failed> {
        let mut wait = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let opts = PaginatedListOptions {
                delimiter: delimited.then_some("/".into()),
                page_token: token.clone(),
                ..Default::default()
            };
            let got = {
                let _permit = self.permits.acquire().await.expect("permits");
                self.pages.list_paginated(Some(prefix), opts).await
            };
            match got {
                Ok(PaginatedListResult { result, page_token }) => {
                    let dirs = result
                        .common_prefixes
                        .iter()
                        .map(|p| format!("{p}/"))
                        .filter(|d| d.starts_with(prefix))
                        .collect();
                    return Ok(Page {
                        objects: result.objects,
                        dirs,
                        next: page_token,
                    });
                }
                Err(e) if attempt < LIST_TRIES && super::failure_of(&e) == Failure::Transient => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    let mut f = Failed::of(&e);
                    if attempt > 1 {
                        f.message = format!("{} (tried {LIST_TRIES} times)", f.message);
                    }
                    return Err(f);
                }
            }
        }
    }

    /// The first page of the keys starting with `prefix`, tried again when
    /// it breaks off, and whether it was all of them.
    pub(super) async fn first_page(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, bool), Failed> {
        let p = self.page(prefix, false, None).await?;
        Ok((p.objects, p.next.is_none()))
    }

    /// Every object below `prefix`, page after page, from `first` on.
    async fn sequential(&self, prefix: &str, first: Page) -> Found {
        // Pages come in key order: one run (a key out of order is kept
        // apart by the run, exactly).
        let mut run = Run::default();
        let mut add = |objects: Vec<ObjectMeta>| {
            for m in &objects {
                if let Some((k, o)) = (self.convert)(m) {
                    run.push(&k, o.size, o.mtime, o.md5);
                }
            }
        };
        add(first.objects);
        let mut next = first.next;
        while let Some(token) = next {
            let p = self.page(prefix, false, Some(token)).await?;
            add(p.objects);
            next = p.next;
        }
        Ok(vec![run])
    }

    /// The children of `prefix`: directories and objects directly below
    /// (a delimited listing, every page).
    async fn children(&self, prefix: &str) -> Result<(Vec<String>, Vec<ObjectMeta>), Failed> {
        let (mut dirs, mut objects) = (Vec::new(), Vec::new());
        let mut token = None;
        loop {
            let p = self.page(prefix, true, token).await?;
            dirs.extend(p.dirs);
            objects.extend(p.objects);
            match p.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        dirs.sort();
        dirs.dedup();
        Ok((dirs, objects))
    }

    /// Every object whose key starts with `prefix`, cut where the keys are
    /// (see the module); `first`: its first page, when already listed.
    pub(super) fn list<'a>(&'a self, prefix: String, first: Option<Vec<ObjectMeta>>) -> BoxFuture<'a, Found> {
        async move {
            let cutting = self.cutting.acquire().await.expect("cutting");
            let first = match first {
                Some(objects) => Page {
                    objects,
                    dirs: Vec::new(),
                    next: Some(String::new()),
                },
                None => self.page(&prefix, false, None).await?,
            };
            if first.next.is_none() {
                return Ok(vec![self.run_of(&first.objects)]);
            }
            let dir = match prefix.rfind('/') {
                Some(i) => &prefix[..=i],
                None => "",
            };
            let last = match first.objects.last() {
                Some(o) if (self.split)(dir) => o.location.to_string(),
                // Not worth cutting here: paged through whole (a page at a
                // time).
                _ => {
                    drop(cutting);
                    return self.sequential_from(&prefix, first).await;
                }
            };
            let (kids, direct) = self.children(&prefix).await?;
            if direct.is_empty() && kids.len() == 1 {
                // One directory holds it all: cut there.
                drop(cutting);
                return self.list(kids[0].clone(), Some(first.objects)).await;
            }
            let mut out = vec![self.run_of(&direct)];
            let mut todo = Vec::new();
            for part in parts(&prefix, &kids, &first.objects, &last) {
                if covered(&part, &last) {
                    out.push(
                        self.run_of(
                            first
                                .objects
                                .iter()
                                .filter(|o| o.location.as_ref().starts_with(&part)),
                        ),
                    );
                } else {
                    todo.push(part);
                }
            }
            drop(first);
            drop(cutting);
            let listed: Vec<Vec<Run>> = futures::stream::iter(todo)
                .map(|p| self.list(p, None))
                .buffer_unordered(LIST_CONCURRENCY)
                .try_collect()
                .await?;
            out.extend(listed.into_iter().flatten());
            Ok(out)
        }
        .boxed()
    }

    /// [`Lister::sequential`] from a first page that may stand for one
    /// already listed by a caller (whose token is not known here: then the
    /// listing starts again).
    async fn sequential_from(&self, prefix: &str, first: Page) -> Found {
        if first.next.as_deref() == Some("") {
            let again = self.page(prefix, false, None).await?;
            return self.sequential(prefix, again).await;
        }
        self.sequential(prefix, first).await
    }
}

/// Whether every key starting with `part` sorts before `last` (so a first
/// page that ended at `last` holds them all).
fn covered(part: &str, last: &str) -> bool {
    part < last && !last.starts_with(part)
}

/// Cuts the children `kids` of `prefix` into parts of about one page each,
/// each a prefix: sizes are what the first page (`first`, ending at
/// `last`) counted for the children it covers, their mean for the others
/// (and for the one it ends in, which is at least a page when the page held
/// nothing else).
fn parts(prefix: &str, kids: &[String], first: &[ObjectMeta], last: &str) -> Vec<String> {
    let page = first.len().max(1) as f64;
    let count = |kid: &str| {
        first
            .iter()
            .filter(|o| o.location.as_ref().starts_with(kid))
            .count() as f64
    };
    let exact: Vec<f64> = kids
        .iter()
        .filter(|k| covered(k, last))
        .map(|k| count(k))
        .collect();
    let mean = if exact.is_empty() {
        page
    } else {
        (exact.iter().sum::<f64>() / exact.len() as f64).max(1.0)
    };
    let sized: Vec<(&str, f64)> = kids
        .iter()
        .map(|k| {
            let est = if covered(k, last) {
                count(k)
            } else if last.starts_with(k.as_str()) {
                // Cut off by the page's end: as large as the others, or,
                // when it held the whole page, at least another page.
                count(k).max(if exact.is_empty() { page } else { mean })
            } else {
                mean
            };
            (k.as_str(), est)
        })
        .collect();
    // At least one character deeper than `prefix`, which did not fit.
    let mut out = Vec::new();
    by_next_char(prefix, &sized, page, &mut out);
    out
}

/// Groups `kids` (all starting with `node`) into prefixes of at most
/// `target` keys where their names allow: `node` itself, or the prefixes
/// one character longer, each grouped again.
fn group(node: &str, kids: &[(&str, f64)], target: f64, out: &mut Vec<String>) {
    match kids {
        [] => {}
        [(kid, _)] => out.push(kid.to_string()),
        _ if kids.iter().map(|(_, n)| n).sum::<f64>() <= target => out.push(node.to_string()),
        _ => by_next_char(node, kids, target, out),
    }
}

/// [`group`] for each prefix one character longer than `node`.
fn by_next_char(node: &str, kids: &[(&str, f64)], target: f64, out: &mut Vec<String>) {
    let mut i = 0;
    while i < kids.len() {
        let c = kids[i].0[node.len()..]
            .chars()
            .next()
            .expect("a child is longer than its parent");
        let sub = format!("{node}{c}");
        let j = i + kids[i..].iter().take_while(|(k, _)| k.starts_with(&sub)).count();
        group(&sub, &kids[i..j], target, out);
        i = j;
    }
}

/// A paginated listing for a store that has none of its own (`InMemory`,
/// a local directory): everything below the prefix's directory, listed
/// and cut here; the continuation token is the last key given.
#[derive(Debug)]
pub struct ListAll(pub Arc<dyn ObjectStore>);

/// Keys per page of [`ListAll`] (S3's page).
const LIST_ALL_PAGE: usize = 1000;

#[async_trait::async_trait]
impl PaginatedListStore for ListAll {
    async fn list_paginated(
        &self,
        prefix: Option<&str>,
        opts: PaginatedListOptions,
    ) -> object_store::Result<PaginatedListResult> {
        let prefix = prefix.unwrap_or("");
        let dir = prefix.rfind('/').map(|i| Key::from(&prefix[..i]));
        let mut all: Vec<ObjectMeta> = self
            .0
            .list(dir.as_ref())
            .try_filter(|o| futures::future::ready(o.location.as_ref().starts_with(prefix)))
            .try_collect()
            .await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        let after = opts.page_token.or(opts.offset).unwrap_or_default();
        let mut result = object_store::ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        let max = opts.max_keys.unwrap_or(LIST_ALL_PAGE);
        let mut given = 0;
        let mut next = None;
        for o in all.into_iter().filter(|o| o.location.as_ref() > after.as_str()) {
            let key = o.location.to_string();
            let dir_below = opts.delimiter.as_ref().and_then(|d| {
                key[prefix.len()..]
                    .find(d.as_ref())
                    .map(|i| key[..prefix.len() + i].to_string())
            });
            if given == max {
                next = result
                    .objects
                    .last()
                    .map(|o: &ObjectMeta| o.location.to_string())
                    .into_iter()
                    .chain(result.common_prefixes.last().map(|p| format!("{p}/\u{10FFFF}")))
                    .max();
                break;
            }
            match dir_below {
                Some(d) => {
                    if result.common_prefixes.last().map(|p| p.as_ref()) != Some(d.as_str()) {
                        result.common_prefixes.push(Key::from(d));
                        given += 1;
                    }
                }
                None => {
                    result.objects.push(o);
                    given += 1;
                }
            }
        }
        Ok(PaginatedListResult {
            result,
            page_token: next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(k: &str) -> ObjectMeta {
        ObjectMeta {
            location: Key::from(k),
            last_modified: Default::default(),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn parts_are_sized_by_what_the_first_page_counted() {
        // 16 children of 10 keys each were seen in full, the 17th in part:
        // the 239 others go by their first character, 16 to a part
        // (160 keys: a page is 165).
        let kids: Vec<String> = (0..256).map(|i| format!("b/{i:02x}/")).collect();
        let mut first: Vec<ObjectMeta> = Vec::new();
        for k in &kids[..16] {
            first.extend((0..10).map(|j| meta(&format!("{k}{j}"))));
        }
        first.extend((0..5).map(|j| meta(&format!("b/10/{j}"))));
        let last = first.last().unwrap().location.to_string();
        let p = parts("b/", &kids, &first, &last);
        let want: Vec<String> = "0123456789abcdef".chars().map(|c| format!("b/{c}")).collect();
        assert_eq!(p, want);
        assert!(covered("b/0", &last) && !covered("b/1", &last));
        // A child the first page ended in is a part of its own, whatever
        // the others.
        let kids = vec!["r/big/".to_string(), "r/c/".to_string(), "r/d/".to_string()];
        let first: Vec<ObjectMeta> = (0..100).map(|j| meta(&format!("r/big/{j:03}"))).collect();
        let p = parts("r/", &kids, &first, "r/big/099");
        assert_eq!(p, ["r/big/", "r/c/", "r/d/"]);
    }
}
