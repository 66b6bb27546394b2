//! Component files as docs/contract.md §5 says: what loads, what is skipped, and errors that name
//! the file, the component and the field, stopping start-up.

use crate::support::api::{Api, Failure, Protocol};
use crate::support::backend::unique;
use crate::support::dlockd::{component, temp_dir, Dlockd, Failed, Options};

const MEMORY: &str = "lock.in-memory";

/// Starts a dlockd that must exit with an error status, not merely fail to become ready.
fn fails(options: Options) -> Failed {
    let failed = Dlockd::start_fails(options);
    assert!(failed.status.is_some_and(|s| !s.success()), "{failed:?}");
    failed
}

/// Whether `store` is loaded: a lock call on it is served rather than refused as not found.
async fn serves(api: &Api, store: &str) -> bool {
    match api
        .lock(Protocol::Grpc, store, &unique("probe"), "o", 5)
        .await
    {
        Ok(_) => true,
        Err(Failure::Grpc { message, .. }) if message.contains("not found") => false,
        Err(other) => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_lock_document_of_a_yaml_file_loads_and_the_rest_is_skipped() {
    let many = format!(
        "{}---\napiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {{name: cfg}}\nspec: {{}}\n---\n{}",
        component("multi-a", MEMORY, &[]),
        component("multi-b", MEMORY, &[]),
    );
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("many.yaml", many),
            ("upper.YML", component("upper", MEMORY, &[])),
            (
                "state.yaml",
                component("statestore", "state.redis", &[("redisHost", "x:1")]),
            ),
            ("notes.txt", component("ignored-txt", MEMORY, &[])),
        ],
    ));
    let api = Api::new(&sidecar).await;
    for store in ["multi-a", "multi-b", "upper"] {
        assert!(serves(&api, store).await, "{store}");
    }
    // Not a .yaml file; not a lock store (skipped with a note, not an error).
    assert!(!serves(&api, "ignored-txt").await);
    assert!(!serves(&api, "statestore").await);
    assert!(sidecar.logs().contains("state.redis is not a lock store"));
}

#[tokio::test]
async fn several_paths_load_without_recursion_and_the_old_flag_name_works() {
    let (one, two) = (temp_dir("res"), temp_dir("res"));
    std::fs::write(one.join("a.yaml"), component("from-one", MEMORY, &[])).unwrap();
    std::fs::write(two.join("b.yaml"), component("from-two", MEMORY, &[])).unwrap();
    std::fs::create_dir_all(two.join("sub")).unwrap();
    std::fs::write(two.join("sub/c.yaml"), component("nested", MEMORY, &[])).unwrap();
    let sidecar = Dlockd::start(Options {
        extra_args: vec![
            "--resources-path".into(),
            one.display().to_string(),
            "--components-path".into(),
            two.display().to_string(),
        ],
        ..Options::default()
    });
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "from-one").await);
    assert!(serves(&api, "from-two").await);
    // Folders are read non-recursively.
    assert!(!serves(&api, "nested").await);
}

#[tokio::test]
async fn without_a_resources_path_the_embedded_store_serves() {
    // No ./components: the embedded store `lockstore`, and the sidecar says so.
    let sidecar = Dlockd::start(Options::default());
    assert!(serves(&Api::new(&sidecar).await, "lockstore").await);
    assert!(sidecar.logs().contains("embedded default"));

    // A ./components folder in the working directory is not read: only --resources-path is.
    let cwd = temp_dir("cwd");
    std::fs::create_dir_all(cwd.join("components")).unwrap();
    std::fs::write(
        cwd.join("components/x.yaml"),
        component("from-cwd", MEMORY, &[]),
    )
    .unwrap();
    let sidecar = Dlockd::start(Options {
        cwd: Some(cwd),
        ..Options::default()
    });
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "lockstore").await);
    assert!(!serves(&api, "from-cwd").await);
}

#[tokio::test]
async fn a_resources_path_may_name_one_file() {
    let dir = temp_dir("one-file");
    std::fs::write(dir.join("a.yaml"), component("chosen", MEMORY, &[])).unwrap();
    std::fs::write(dir.join("b.yaml"), component("sibling", MEMORY, &[])).unwrap();
    let sidecar = Dlockd::start(Options {
        extra_args: vec![
            "--resources-path".into(),
            dir.join("a.yaml").display().to_string(),
        ],
        ..Options::default()
    });
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "chosen").await);
    assert!(!serves(&api, "sibling").await);
    assert!(!serves(&api, "lockstore").await);
}

#[tokio::test]
async fn scopes_limit_components_to_app_ids() {
    let scoped =
        |name: &str, scope: &str| format!("{}scopes: [{scope}]\n", component(name, MEMORY, &[]));
    let files = [
        ("a.yaml", scoped("mine", "bpm")),
        ("b.yaml", scoped("theirs", "other")),
    ];
    let sidecar = Dlockd::start(Options::with_files("bpm", &files));
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "mine").await);
    assert!(!serves(&api, "theirs").await);
}

#[tokio::test]
async fn metadata_values_resolve_env_and_secret_references() {
    let dir = temp_dir("secrets");
    let secrets_file = dir.join("secrets.json");
    std::fs::write(
        &secrets_file,
        r#"{"lock": {"prefix": "Shared-From-Secret"}}"#,
    )
    .unwrap();
    let with_items = |name: &str, items: &str, auth: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  type: {MEMORY}\n  version: v1\n  metadata:\n{items}{auth}"
        )
    };
    let files = [
        (
            "file-store.yaml",
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: files}}\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata:\n  - name: secretsFile\n    value: {}\n",
                secrets_file.display()
            ),
        ),
        (
            "env-store.yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: envs}\nspec: {type: secretstores.local.env, version: v1}\n".to_string(),
        ),
        ("literal.yaml", component("literal", MEMORY, &[("keyPrefix", "shared-from-secret")])),
        (
            "from-file.yaml",
            with_items("from-file", "  - name: keyPrefix\n    secretKeyRef: {name: 'lock:prefix', key: 'lock:prefix'}\n", "auth: {secretStore: files}\n"),
        ),
        (
            "from-env-secret.yaml",
            with_items("from-env-secret", "  - name: KEYPREFIX\n    secretKeyRef: {name: DLOCK_T_PREFIX}\n", "auth: {secretStore: envs}\n"),
        ),
        ("from-envref.yaml", with_items("from-envref", "  - name: keyPrefix\n    envRef: DLOCK_T_PREFIX\n", "")),
    ];
    let sidecar = Dlockd::start(Options {
        env: vec![("DLOCK_T_PREFIX".into(), "SHARED-from-secret".into())],
        ..Options::with_files("app", &files)
    });
    let api = Api::new(&sidecar).await;
    // All four resolve keyPrefix to `shared-from-secret`, so they share every key.
    for store in ["from-file", "from-env-secret", "from-envref"] {
        let resource = unique("ref");
        assert_eq!(
            api.lock(Protocol::Grpc, "literal", &resource, "a", 30)
                .await,
            Ok(true)
        );
        assert_eq!(
            api.lock(Protocol::Grpc, store, &resource, "b", 30).await,
            Ok(false),
            "{store}"
        );
    }
    // Secret stores appear in the metadata; their values appear nowhere.
    let metadata = sidecar.http_client().get("/v1.0/metadata").await.unwrap();
    let text = String::from_utf8_lossy(&metadata.body).to_string();
    assert!(text.contains("secretstores.local.file"), "{text}");
    assert!(!text.to_lowercase().contains("shared-from-secret"));
}

#[tokio::test]
async fn bad_files_name_the_file_component_and_field() {
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "unknown type",
            component("s", "lock.etcd-typo", &[]),
            &["bad.yaml", "component 's'", "field spec.type", "unknown type 'lock.etcd-typo'", "lock.in-memory"],
        ),
        (
            "keyPrefix with ||",
            component("s", MEMORY, &[("keyPrefix", "a||b")]),
            &["component 's'", "keyPrefix", "can't contain '||'"],
        ),
        (
            "no name",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {}\nspec: {type: lock.in-memory}\n".into(),
            &["bad.yaml", "field metadata.name"],
        ),
        (
            "bad version",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: lock.in-memory, version: v2}\n".into(),
            &["component 's'", "field spec.version", "v2"],
        ),
        (
            "bad yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: [Component\n".into(),
            &["bad.yaml", "not valid YAML"],
        ),
        (
            "secret without store",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: lock.in-memory\n  metadata:\n  - name: keyPrefix\n    secretKeyRef: {name: x, key: x}\n".into(),
            &["component 's'", "field spec.metadata 'keyPrefix'", "auth.secretStore"],
        ),
    ];
    for (case, text, expected) in cases {
        let failed = fails(Options::with_files("app", &[("bad.yaml", text)]));
        for part in expected {
            assert!(
                failed.output.contains(part),
                "{case}: '{part}' missing from:\n{}",
                failed.output
            );
        }
    }
    // A duplicate name names both files.
    let failed = fails(Options::with_files(
        "app",
        &[
            ("a.yaml", component("dup", MEMORY, &[])),
            ("b.yaml", component("dup", MEMORY, &[])),
        ],
    ));
    assert!(
        failed.output.contains("duplicate component name"),
        "{}",
        failed.output
    );
    assert!(failed.output.contains("a.yaml") && failed.output.contains("b.yaml"));
    // A missing secret is named; no value is shown.
    let dir = temp_dir("secrets");
    std::fs::write(dir.join("s.json"), r#"{"present": "TOPSECRETVALUE"}"#).unwrap();
    let files = [
        (
            "store.yaml",
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: files}}\nspec:\n  type: secretstores.local.file\n  metadata:\n  - name: secretsFile\n    value: {}\n",
                dir.join("s.json").display()
            ),
        ),
        (
            "lock.yaml",
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: lock.in-memory\n  metadata:\n  - name: keyPrefix\n    secretKeyRef: {name: absent}\nauth: {secretStore: files}\n".to_string(),
        ),
    ];
    let failed = fails(Options::with_files("app", &files));
    assert!(
        failed.output.contains("secret 'absent'"),
        "{}",
        failed.output
    );
    assert!(!failed.output.contains("TOPSECRETVALUE"));
}

#[tokio::test]
async fn ignore_errors_lets_the_sidecar_start() {
    let broken = component("broken", "lock.nonexistent", &[])
        .replace("spec:\n", "spec:\n  ignoreErrors: true\n");
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("broken.yaml", broken),
            ("good.yaml", component("good", MEMORY, &[])),
        ],
    ));
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "good").await);
    assert!(!serves(&api, "broken").await);
    assert!(sidecar.logs().contains("ignoreErrors"));
}

#[test]
fn the_shipped_component_files_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for folder in ["components"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let parsed = dlock::config::component::parse_file(&path, &text).unwrap();
                assert_eq!(parsed.len(), 1, "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 2);
}

/// A file as an editor on Windows saves it: a byte-order mark first, CRLF line endings.
fn windows_file(text: &str) -> String {
    format!("\u{feff}{}", text.replace('\n', "\r\n"))
}

#[tokio::test]
async fn files_with_a_byte_order_mark_and_crlf_load_beside_other_building_blocks() {
    // As the .NET SDK's examples ship them: a binding and a lock store in one folder.
    let binding = component("cron", "bindings.cron", &[("schedule", "@every 10s")]);
    // A binding whose metadata our parser would refuse, and one that is not even YAML.
    let odd_binding = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: odd}\nspec:\n  type: bindings.http\n  metadata: {url: http://x}\n  initTimeout: soon\n";
    let broken_state = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: st}\nspec:\n  type: state.redis\n  metadata: [{name: a, value: {{ .x }}\n";
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("binding.yaml", windows_file(&binding)),
            (
                "lockstore.yaml",
                windows_file(&component("lockstore", MEMORY, &[])),
            ),
            ("odd.yaml", windows_file(odd_binding)),
            ("broken.yaml", broken_state.into()),
        ],
    ));
    let api = Api::new(&sidecar).await;
    assert!(serves(&api, "lockstore").await);
    assert!(!serves(&api, "cron").await);
    // A file added while it runs makes the reloader read every file again; once the new
    // store serves, the reread is done, and the skipped components were noted once.
    let added = sidecar.resources.clone().unwrap().join("added.yaml");
    std::fs::write(&added, component("added", MEMORY, &[])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !serves(&api, "added").await {
        assert!(
            std::time::Instant::now() < deadline,
            "the added store never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = sidecar.logs();
    for skipped in ["bindings.cron", "bindings.http", "state.redis"] {
        let noted = logs
            .lines()
            .filter(|l| l.contains(&format!("{skipped} is not a lock store")))
            .count();
        assert_eq!(noted, 1, "{skipped}: {logs}");
    }
}

/// A lock store whose `kind` or `apiVersion` is misspelt would silently not be served: it
/// stops start-up naming the file, the line and the field (it used to be skipped with a
/// warning, which left a sidecar serving without the store its app asks for). Another building
/// block's misspelt component is still skipped.
#[tokio::test]
async fn a_misspelt_kind_or_api_version_stops_start_up_naming_file_line_and_field() {
    let store = component("typo", MEMORY, &[]);
    let kind_line = store.lines().position(|l| l.starts_with("kind:")).unwrap() + 1;
    let version_line = store
        .lines()
        .position(|l| l.starts_with("apiVersion:"))
        .unwrap()
        + 1;
    for (file, text, said) in [
        (
            "kind.yaml",
            store.replace("kind: Component", "kind: Componnet"),
            "field kind: ",
        ),
        (
            "version.yaml",
            store.replace("dapr.io/v1alpha1", "dapr.io/v1alpha"),
            "field apiVersion: ",
        ),
    ] {
        let failed = fails(Options::with_files(
            "app",
            &[(file, text), ("good.yaml", component("good", MEMORY, &[]))],
        ));
        let output = failed.output;
        assert!(output.contains(file), "{output}");
        let line = if file == "kind.yaml" {
            kind_line
        } else {
            version_line
        };
        assert!(
            output.contains(&format!("line {line}: document 1")),
            "{output}"
        );
        assert!(
            output.contains("looks like a component with a typo"),
            "{output}"
        );
        assert!(output.contains(said), "{output}");
    }
    // Another building block's typo is not ours to refuse.
    let state = component("cache", "state.redis", &[]).replace("kind: Component", "kind: Componet");
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("state.yaml", state),
            ("good.yaml", component("good", MEMORY, &[])),
        ],
    ));
    assert!(sidecar.logs().contains("state.redis is not a lock store"));
}

#[tokio::test]
async fn a_lock_store_file_that_is_not_yaml_stops_start_up_at_its_line_and_column() {
    // The unclosed list runs on into line 8, `  metadata: []`, whose colon (column 11) breaks it.
    let text = windows_file(
        &component("store", MEMORY, &[]).replace("  version: v1\n", "  version: [v1\n"),
    );
    let failed = fails(Options::with_files("app", &[("lock.yaml", text)]));
    assert!(
        failed
            .output
            .contains("lock.yaml: line 8, column 11: document 1 is not valid YAML"),
        "{}",
        failed.output
    );
}

/// A metadata name the store never reads (a typo such as `keyPrefx`, which would silently
/// change which sidecars share locks) is named in a warning, with the name it is closest to.
#[tokio::test]
async fn an_unread_metadata_name_is_a_warning_with_did_you_mean() {
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[(
            "typo.yaml",
            component("typo", MEMORY, &[("keyPrefx", "none"), ("flavour", "x")]),
        )],
    ));
    let logs = sidecar.logs();
    let warned = |name: &str| {
        logs.lines()
            .find(|l| l.contains("WARN") && l.contains(&format!("metadata '{name}'")))
            .unwrap_or_else(|| panic!("no warning for {name}:\n{logs}"))
            .to_string()
    };
    let typo = warned("keyPrefx");
    assert!(typo.contains("typo.yaml: component 'typo'"), "{typo}");
    assert!(
        typo.contains("is not a setting lock.in-memory reads"),
        "{typo}"
    );
    assert!(typo.contains("(did you mean 'keyPrefix'?)"), "{typo}");
    assert!(!warned("flavour").contains("did you mean"));
    // The value is a setting's, possibly a secret's: never shown.
    assert!(
        !logs.contains("flavour: x") && !logs.contains("'x'"),
        "{logs}"
    );
}
