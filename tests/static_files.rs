//! Static checks of the shipped deployment files, since no container engine
//! runs in CI: docker-compose.yml and the Grafana provisioning parse, every
//! file they reference exists, images are pinned, and the dashboard's
//! queries parse as LogQL.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn load(path: &str) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .remove(0)
}

#[test]
fn compose_file_is_valid_and_complete() {
    let c = load("docker-compose.yml");
    let services = c["services"].as_hash().expect("services");
    for name in ["miniloki", "grafana", "demo"] {
        assert!(
            services.contains_key(&Yaml::String(name.into())),
            "service {name}"
        );
    }
    for (name, svc) in services {
        if let Some(image) = svc["image"].as_str() {
            let tag = image.rsplit_once(':').map(|t| t.1).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest",
                "{name:?}: image {image} is not pinned"
            );
        }
        for v in svc["volumes"].as_vec().into_iter().flatten() {
            let spec = v.as_str().expect("volume spec");
            let src = spec.split(':').next().unwrap();
            if src.starts_with("./") {
                assert!(Path::new(src).exists(), "{name:?} mounts missing {src}");
            }
        }
    }
    let m = &c["services"]["miniloki"];
    assert_eq!(m["build"].as_str(), Some("."));
    assert!(Path::new("Dockerfile").exists());
    let hc: Vec<&str> = m["healthcheck"]["test"]
        .as_vec()
        .expect("healthcheck")
        .iter()
        .filter_map(|y| y.as_str())
        .collect();
    assert!(
        hc.iter().any(|s| s.ends_with("/ready")),
        "healthcheck probes /ready: {hc:?}"
    );
    assert!(
        c["volumes"]["miniloki-data"].is_null()
            || c["volumes"]["miniloki-data"].as_hash().is_some(),
        "named data volume"
    );
    // The Dockerfile copies only paths that exist, and runs as non-root.
    let docker = std::fs::read_to_string("Dockerfile").unwrap();
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(Path::new(src).exists(), "Dockerfile copies missing {src}");
        }
    }
    assert!(
        docker.contains("\nUSER "),
        "final image runs as a non-root user"
    );
}

#[test]
fn grafana_provisioning_points_at_miniloki_with_trace_links() {
    let ds = load("grafana/provisioning/datasources/miniloki.yaml");
    let d = &ds["datasources"][0];
    assert_eq!(d["type"].as_str(), Some("loki"));
    let fields = d["jsonData"]["derivedFields"]
        .as_vec()
        .expect("derived fields");
    let kinds: Vec<&str> = fields
        .iter()
        .filter_map(|f| f["matcherType"].as_str())
        .collect();
    assert!(
        kinds.contains(&"regex") && kinds.contains(&"label"),
        "{kinds:?}"
    );
    let re = fields
        .iter()
        .find(|f| f["matcherType"].as_str() == Some("regex"))
        .unwrap()["matcherRegex"]
        .as_str()
        .unwrap();
    let re = regex::Regex::new(re).unwrap();
    let line =
        r#"{"level": "error", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "event": "x"}"#;
    assert_eq!(
        &re.captures(line).unwrap()[1],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let prov = load("grafana/provisioning/dashboards/miniloki.yaml");
    assert_eq!(
        prov["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
}

#[test]
fn dashboard_queries_are_valid_logql() {
    let text = std::fs::read_to_string("grafana/dashboards/service-logs.json").unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            // Grafana interpolates variables before sending.
            let q = expr
                .replace("$service", "order")
                .replace("$search", "")
                .replace("$__auto", "1m")
                .replace("$__range", "1h");
            miniloki::logql::syntax::parse_expr(&q).unwrap_or_else(|e| panic!("{expr}: {e}"));
            n += 1;
        }
    }
    assert_eq!(n, 5);
}
