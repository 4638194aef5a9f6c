//! Relative paths of the layout. Arguments must be validated names.

use crate::digest::Digest;

pub const BLOBS: &str = "blobs";
pub const REPOSITORIES: &str = "repositories";

pub fn blob_dir(d: &Digest) -> String {
    let hex = d.hex();
    format!("blobs/{}/{}/{}", d.algorithm().name(), &hex[..2], hex)
}
/// `blobs/<alg>/<xx>`, the prefix directory of `d`'s blob directory.
pub fn blob_prefix_dir(d: &Digest) -> String {
    let hex = d.hex();
    format!("blobs/{}/{}", d.algorithm().name(), &hex[..2])
}
pub fn blob_data(d: &Digest) -> String {
    blob_dir(d) + "/data"
}
pub fn repo(repo: &str) -> String {
    format!("repositories/{repo}")
}
pub fn tags(repo: &str) -> String {
    format!("repositories/{repo}/_manifests/tags")
}
pub fn tag_dir(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}")
}
pub fn tag_current(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}/current/link")
}
pub fn tag_index_entry(repo: &str, tag: &str, d: &Digest) -> String {
    format!(
        "repositories/{repo}/_manifests/tags/{tag}/index/{}",
        d.path_parts()
    )
}
pub fn tag_index(repo: &str, tag: &str) -> String {
    format!("repositories/{repo}/_manifests/tags/{tag}/index")
}
pub fn revisions(repo: &str) -> String {
    format!("repositories/{repo}/_manifests/revisions")
}
pub fn revision_dir(repo: &str, d: &Digest) -> String {
    format!("repositories/{repo}/_manifests/revisions/{}", d.path_parts())
}
pub fn revision_link(repo: &str, d: &Digest) -> String {
    revision_dir(repo, d) + "/link"
}
pub fn layer_links(repo: &str) -> String {
    format!("repositories/{repo}/_layers")
}
pub fn layer_link_dir(repo: &str, d: &Digest) -> String {
    format!("repositories/{repo}/_layers/{}", d.path_parts())
}
pub fn layer_link(repo: &str, d: &Digest) -> String {
    layer_link_dir(repo, d) + "/link"
}
pub fn uploads(repo: &str) -> String {
    format!("repositories/{repo}/_uploads")
}
pub fn upload_dir(repo: &str, id: &str) -> String {
    format!("repositories/{repo}/_uploads/{id}")
}
