//! Repository names the registry accepts although they break the plain
//! component grammar: a first component that is a domain (capitals, dots,
//! a port). Debian's docker-registry 2.8.2 accepts and serves `Upper/app`
//! and `MyReg.example.com/team/app`; skopeo refuses such names client-side,
//! so they are pushed and fetched over the HTTP API.

use reg_tests::oci::{layer, Image, Platform};
use reg_tests::tree::{age_tree, THREE_DAYS};
use reg_tests::{registry_programs_available, Registry, Tool};

/// The names the registry serves that the plain grammar refuses.
const ODD: [&str; 2] = ["Upper/app", "MyReg.example.com/team/app"];

#[test]
fn names_with_a_domain_are_collected_like_any_other_and_still_fetch() {
    let test = "names_with_a_domain_are_collected_like_any_other_and_still_fetch";
    if !registry_programs_available(test) {
        return;
    }
    let mut reg = Registry::start().unwrap_or_else(|e| panic!("{test}: starting the registry: {e:#}"));
    let api = reg.api();
    let mut garbage = Vec::new();
    for repo in ODD.iter().copied().chain(["plain/app"]) {
        let img = Image::build(
            repo,
            Platform::linux("amd64"),
            vec![layer(&format!("{repo} layer"))],
        );
        api.push(repo, Some("v1"), &img)
            .unwrap_or_else(|e| panic!("pushing {repo}: {e:#}\n{}", reg.log_contents()));
        assert_eq!(api.fetch_all(repo, "v1").unwrap(), 2, "{repo}");
        // Garbage in each: a blob uploaded and never referenced.
        garbage.push(
            api.upload_blob(repo, format!("garbage in {repo}").as_bytes())
                .unwrap(),
        );
    }
    let catalog = api.catalog().unwrap();
    for repo in ODD {
        assert!(catalog.iter().any(|r| r == repo), "{repo} not in {catalog:?}");
    }
    reg.stop().unwrap();
    age_tree(reg.root(), THREE_DAYS);

    // Every tool takes them as repositories, not as broken names.
    let ls = Tool::new("reg-ls").arg(reg.root()).args(["--kind", "repo"]).run();
    for repo in ODD {
        assert!(
            ls.success().stdout.contains(&format!("\"repo\":\"{repo}\"")),
            "{repo}: {}",
            ls.stdout
        );
    }
    // The default collection: reg-refs ROOT | reg-orphans ROOT | reg-rm ROOT.
    let refs = Tool::new("reg-refs").arg(reg.root()).run();
    refs.success();
    let orphans = Tool::new("reg-orphans").arg(reg.root()).stdin(&refs.stdout).run();
    orphans.success();
    // reg-rm takes their records too (its input check is the same grammar).
    let rm = Tool::new("reg-rm").arg(reg.root()).stdin(&orphans.stdout).run();
    rm.success();
    let deleted: Vec<String> = rm
        .records()
        .iter()
        .filter(|r| r["kind"] == "blob" && r["action"] == "deleted")
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    let mut want = garbage.clone();
    want.sort();
    assert_eq!(deleted, want, "{}", rm.stdout);
    for repo in ODD {
        let linked = rm
            .records()
            .iter()
            .filter(|r| r["kind"] == "layer-link" && r["repo"] == repo && r["action"] == "deleted")
            .count();
        assert_eq!(
            linked, 1,
            "{repo}: its garbage link goes with the blob\n{}",
            rm.stdout
        );
    }

    reg.restart().unwrap();
    let api = reg.api();
    for repo in ODD.iter().copied().chain(["plain/app"]) {
        let n = api
            .fetch_all(repo, "v1")
            .unwrap_or_else(|e| panic!("{repo}:v1 no longer fetches: {e:#}\n{}", reg.log_contents()));
        assert_eq!(n, 2, "{repo}");
    }
    for (repo, d) in ODD.iter().copied().chain(["plain/app"]).zip(&garbage) {
        assert!(
            !api.blob_exists(repo, d).unwrap(),
            "{repo}: garbage {d} still served"
        );
    }
}
