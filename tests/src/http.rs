//! The registry's HTTP API (plain http, 127.0.0.1 only), for what skopeo does
//! not do: reading the catalog and tag lists, leaving unreferenced blobs and
//! unfinished uploads behind, and pushing manifests by digest.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::oci::{Blob, Content};

/// A client for one registry, addressed as `127.0.0.1:PORT`.
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: Agent,
}

/// A response read to the end: status, the headers we use, body.
struct Reply {
    status: u16,
    location: Option<String>,
    content_digest: Option<String>,
    upload_uuid: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn read(resp: Response<Body>) -> Result<Reply> {
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = resp.status().as_u16();
        let location = header("location");
        let content_digest = header("docker-content-digest");
        let upload_uuid = header("docker-upload-uuid");
        let content_type = header("content-type");
        let body = resp.into_body().read_to_vec().context("reading response body")?;
        Ok(Reply {
            status,
            location,
            content_digest,
            upload_uuid,
            content_type,
            body,
        })
    }

    /// The reply to `what` (`METHOD URL`), read to the end.
    fn of(resp: std::result::Result<Response<Body>, ureq::Error>, what: &str) -> Result<Reply> {
        Reply::read(resp.with_context(|| what.to_owned())?)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn expect(self, what: &str, ok: &[u16]) -> Result<Reply> {
        if ok.contains(&self.status) {
            Ok(self)
        } else {
            bail!("{what}: HTTP {} {}", self.status, self.text())
        }
    }
}

impl Api {
    /// A client for the registry at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: &str) -> Api {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Api {
            base: format!("http://{addr}"),
            agent: Agent::new_with_config(config),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A `Location` header made absolute.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Result<Reply> {
        let url = self.url(path);
        let mut req = self.agent.get(&url);
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        Reply::of(req.call(), &format!("GET {url}"))
    }

    /// `POST /v2/<name>/blobs/uploads/`: starts an upload.
    fn post_upload(&self, repo: &str) -> Result<Reply> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        Reply::of(self.agent.post(&url).send_empty(), &format!("POST {url}"))
    }

    /// `PUT` of `bytes` as `content_type` to `url`.
    fn put(&self, url: &str, content_type: &str, bytes: &[u8]) -> Result<Reply> {
        Reply::of(
            self.agent
                .put(url)
                .header("Content-Type", content_type)
                .send(bytes),
            &format!("PUT {url}"),
        )
    }

    /// `PUT` of a blob's `bytes` to the upload at `location`, finishing it
    /// as `digest`.
    fn put_upload(&self, location: &str, digest: &str, bytes: &[u8]) -> Result<Reply> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        self.put(&url, "application/octet-stream", bytes)
    }

    /// `GET /v2/` answers 200.
    pub fn ping(&self) -> Result<()> {
        self.get("/v2/", None)?.expect("GET /v2/", &[200])?;
        Ok(())
    }

    /// Repositories listed by `/v2/_catalog?n=1000`, in the registry's order.
    pub fn catalog(&self) -> Result<Vec<String>> {
        let reply = self
            .get("/v2/_catalog?n=1000", None)?
            .expect("GET /v2/_catalog", &[200])?;
        let v: serde_json::Value = serde_json::from_slice(&reply.body).context("catalog is not JSON")?;
        string_list(&v["repositories"]).context("catalog: `repositories`")
    }

    /// Tags listed by `/v2/<name>/tags/list`; a repository without tags may
    /// answer 404 or a `null` list, both read as no tags.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let reply = self.get(&format!("/v2/{repo}/tags/list"), None)?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        let reply = reply.expect(&format!("GET tags of {repo}"), &[200])?;
        let v: serde_json::Value = serde_json::from_slice(&reply.body).context("tags list is not JSON")?;
        string_list(&v["tags"]).with_context(|| format!("tags of {repo}"))
    }

    /// Whether the repository serves the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let reply = Reply::of(self.agent.head(&url).call(), &format!("HEAD {url}"))?;
        match reply.status {
            200 => Ok(true),
            404 => Ok(false),
            s => bail!("HEAD {url}: HTTP {s}"),
        }
    }

    /// The blob's bytes, or `None` on 404.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Result<Option<Vec<u8>>> {
        let reply = self.get(&format!("/v2/{repo}/blobs/{digest}"), None)?;
        if reply.status == 404 {
            return Ok(None);
        }
        Ok(Some(reply.expect("GET blob", &[200])?.body))
    }

    /// Starts an upload (`POST /v2/<name>/blobs/uploads/`) and returns the
    /// absolute URL to continue it and the upload's uuid. Never finished, this
    /// leaves a `_uploads/<uuid>` directory.
    pub fn start_upload(&self, repo: &str) -> Result<(String, String)> {
        let reply = self
            .post_upload(repo)?
            .expect(&format!("starting an upload in {repo}"), &[202])?;
        let location = reply
            .location
            .as_deref()
            .context("upload answer without Location")?;
        let location = self.absolute(location);
        let uuid = match reply.upload_uuid {
            Some(u) => u,
            None => location
                .split('?')
                .next()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or_default()
                .to_owned(),
        };
        if uuid.is_empty() {
            bail!("cannot tell the upload uuid from {location}");
        }
        Ok((location, uuid))
    }

    /// Monolithic upload of `bytes` into `repo`; returns its digest. Nothing
    /// references the blob unless a manifest pushed later does.
    pub fn upload_blob(&self, repo: &str, bytes: &[u8]) -> Result<String> {
        let digest = reg_core::Digest::sha256_of(bytes).to_string();
        let (location, _) = self.start_upload(repo)?;
        let reply = self
            .put_upload(&location, &digest, bytes)?
            .expect(&format!("uploading {digest} to {repo}"), &[201])?;
        if let Some(d) = reply.content_digest {
            if d != digest {
                bail!("registry stored {d} for a blob that hashes to {digest}");
            }
        }
        Ok(digest)
    }

    /// Uploads a blob unless the repository already serves it.
    pub fn ensure_blob(&self, repo: &str, blob: &Blob) -> Result<()> {
        if !self.blob_exists(repo, &blob.digest)? {
            self.upload_blob(repo, &blob.bytes)?;
        }
        Ok(())
    }

    /// `PUT /v2/<name>/manifests/<reference>`; returns the digest the
    /// registry answers with (checked against the bytes' own digest).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let reply = self
            .put(&url, media_type, bytes)?
            .expect(&format!("pushing manifest {repo}:{reference}"), &[201])?;
        let digest = reg_core::Digest::sha256_of(bytes).to_string();
        if let Some(d) = reply.content_digest {
            if d != digest {
                bail!("registry answered {d} for a manifest that hashes to {digest}");
            }
        }
        Ok(digest)
    }

    /// `GET /v2/<name>/manifests/<reference>`: `(content type, bytes)`, or
    /// `None` on 404. Accepts every manifest type the tools know.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<(String, Vec<u8>)>> {
        let reply = self.get(
            &format!("/v2/{repo}/manifests/{reference}"),
            Some(crate::oci::ACCEPT_ALL_MANIFESTS),
        )?;
        if reply.status == 404 {
            return Ok(None);
        }
        let reply = reply.expect(&format!("GET manifest {repo}:{reference}"), &[200])?;
        Ok(Some((reply.content_type.unwrap_or_default(), reply.body)))
    }

    /// Fetches `repo:reference` whole over the API, as a client pulling it
    /// would (for names skopeo refuses client-side): the manifest, checked
    /// against `reference` when that is a digest, then every config, layer
    /// and blob it names, and the children of an index (recursively), each
    /// checked against its digest. Returns how many blobs were fetched.
    pub fn fetch_all(&self, repo: &str, reference: &str) -> Result<usize> {
        let (_, bytes) = self
            .get_manifest(repo, reference)?
            .with_context(|| format!("{repo}:{reference}: manifest not served (404)"))?;
        let digest = reg_core::Digest::sha256_of(&bytes).to_string();
        if reference.starts_with("sha256:") && digest != reference {
            bail!("{repo}@{reference}: served a manifest that hashes to {digest}");
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{repo}:{reference}: not JSON"))?;
        let mut fetched = 0;
        let descriptors = doc["config"]
            .as_object()
            .into_iter()
            .map(|_| &doc["config"])
            .chain(doc["layers"].as_array().into_iter().flatten())
            .chain(doc["blobs"].as_array().into_iter().flatten());
        for d in descriptors {
            let want = d["digest"].as_str().context("a descriptor without digest")?;
            let got = self
                .get_blob(repo, want)?
                .with_context(|| format!("{repo}:{reference}: blob {want} not served (404)"))?;
            let have = reg_core::Digest::sha256_of(&got).to_string();
            if have != want {
                bail!("{repo}:{reference}: blob {want} served with bytes hashing to {have}");
            }
            fetched += 1;
        }
        for child in doc["manifests"].as_array().into_iter().flatten() {
            let want = child["digest"].as_str().context("a child without digest")?;
            fetched += self.fetch_all(repo, want)?;
        }
        Ok(fetched)
    }

    /// `DELETE /v2/<name>/manifests/<digest>`.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
        Reply::of(self.agent.delete(&url).call(), &format!("DELETE {url}"))?
            .expect(&format!("deleting manifest {repo}@{digest}"), &[202])?;
        Ok(())
    }

    /// Pushes content over HTTP: every blob it needs (uploaded to `repo`
    /// unless already there), an index's children by digest, then the top
    /// manifest under `reference` (a tag, or `None` for by digest). Returns the
    /// top manifest's digest.
    pub fn push(&self, repo: &str, reference: Option<&str>, content: &dyn Content) -> Result<String> {
        for blob in content.layer_blobs() {
            self.ensure_blob(repo, blob)?;
        }
        for child in content.child_manifests() {
            self.put_manifest(repo, &child.digest, &child.media_type, &child.bytes)?;
        }
        let top = content.top();
        let reference = reference.unwrap_or(&top.digest);
        self.put_manifest(repo, reference, &top.media_type, &top.bytes)
    }
}

/// A response as it came, for requests whose refusal is data (the
/// differential test): status and body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The registry's error codes and messages (`MANIFEST_BLOB_UNKNOWN blob
    /// unknown to registry`), or the start of the body when it is not the
    /// registry's error JSON.
    pub fn errors(&self) -> String {
        let parsed: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
            .map(|errors| {
                let mut out: Vec<String> = Vec::new();
                for e in errors {
                    let code = e["code"].as_str().unwrap_or("?");
                    let message = e["message"].as_str().unwrap_or("");
                    let one = format!("{code} ({message})");
                    if !out.contains(&one) {
                        out.push(one);
                    }
                }
                out
            });
        match parsed {
            Some(list) if !list.is_empty() => list.join(", "),
            _ => {
                let text = String::from_utf8_lossy(&self.body);
                text.trim().chars().take(120).collect()
            }
        }
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer {
            status: reply.status,
            body: reply.body,
        }
    }
}

impl Api {
    /// Uploads `bytes` to `repo` in one PUT with `?digest=` `digest` (any
    /// algorithm the registry takes: it stores the data under its sha256
    /// and links the digest given to it). The answer, whatever it is.
    pub fn try_upload(&self, repo: &str, bytes: &[u8], digest: &str) -> Result<Answer> {
        let reply = self.post_upload(repo)?;
        let location = match (reply.status, &reply.location) {
            (202, Some(l)) => self.absolute(l),
            _ => return Ok(reply.into()),
        };
        Ok(self.put_upload(&location, digest, bytes)?.into())
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `media_type`; the
    /// answer, whatever it is.
    pub fn try_put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Answer> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        Ok(self.put(&url, media_type, bytes)?.into())
    }

    /// `GET` of a path under the registry (`/v2/…`), with `Accept` naming
    /// every manifest type; the answer, whatever it is.
    pub fn try_get(&self, path: &str) -> Result<Answer> {
        Ok(self.get(path, Some(crate::oci::ACCEPT_ALL_MANIFESTS))?.into())
    }
}

fn string_list(v: &serde_json::Value) -> Result<Vec<String>> {
    match v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("not a string: {i}"))
            })
            .collect(),
        other => bail!("not a list: {other}"),
    }
}
