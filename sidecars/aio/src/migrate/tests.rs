//! Round trips of driver manifests of several shapes: the converted workloads keep every
//! non-sidecar container, mount, variable and document, their csi-sidecars arguments parse and
//! give each controller the values its own container had, and converting again changes nothing.

use csi_sidecar_runtime::flags::{LOGGING_FLAGS, Scope};
use csi_sidecar_runtime::process::{aggregate_flags, aggregate_process_flags, standalone_flags};

use super::*;
use crate::{NAME, TABLE};

const HOSTPATH: &str = include_str!("../../tests/fixtures/migrate/hostpath.yaml");
const CLOUD_BLOCK: &str = include_str!("../../tests/fixtures/migrate/cloud-block.yaml");
const NFS: &str = include_str!("../../tests/fixtures/migrate/nfs.yaml");

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn containers(doc: &Value) -> Vec<Value> {
    doc["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn known(image: &str) -> Option<&'static Descriptor> {
    descriptor_for_image(TABLE, image)
}

/// Notes that announce a deliberate change to `flag` for some controller.
fn announced(report: &Report, flag: &str) -> bool {
    report
        .lines
        .iter()
        .any(|l| l.contains(&format!("--{flag}")) || l.contains(&format!("-{flag} differed")))
}

/// The checks every fixture gets.
fn round_trip(text: &str) -> (Vec<Value>, Report) {
    let (out, report) = convert(text, TABLE, &Options::default()).unwrap();
    let before = docs(text);
    let after = docs(&out);
    assert_eq!(before.len(), after.len(), "{out}");
    let process_names: Vec<&str> = aggregate_process_flags(TABLE)
        .iter()
        .map(|f| f.name)
        .chain(LOGGING_FLAGS.iter().map(|f| f.name))
        .collect();
    for (old, new) in before.iter().zip(&after) {
        let kind = old["kind"].as_str().unwrap();
        if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
            assert_eq!(old, new, "a {kind} passes through unchanged");
            continue;
        }
        // Everything outside the containers is unchanged.
        let mut a = old.clone();
        let mut b = new.clone();
        a["spec"]["template"]["spec"]["containers"] = Value::Null;
        b["spec"]["template"]["spec"]["containers"] = Value::Null;
        assert_eq!(a, b);

        let old_c = containers(old);
        let new_c = containers(new);
        let sidecars: Vec<&Value> = old_c
            .iter()
            .filter(|c| known(c["image"].as_str().unwrap()).is_some())
            .collect();
        let aio: Vec<&Value> = new_c.iter().filter(|c| c["name"] == NAME).collect();
        assert_eq!(aio.len(), 1, "one csi-sidecars container in {kind}");
        let aio = aio[0];
        // Other containers are kept as they were, in order.
        let others_before: Vec<&Value> = old_c
            .iter()
            .filter(|c| known(c["image"].as_str().unwrap()).is_none())
            .collect();
        let others_after: Vec<&Value> = new_c.iter().filter(|c| c["name"] != NAME).collect();
        assert_eq!(others_before, others_after);
        // No sidecar image is left.
        assert!(
            new_c
                .iter()
                .all(|c| known(c["image"].as_str().unwrap()).is_none()),
            "{out}"
        );

        // csi-sidecars accepts the arguments, and each controller sees its container's values.
        let args = strings(&aio["args"]);
        let parsed = aggregate_flags(NAME, TABLE)
            .parse(std::iter::once(NAME.to_string()).chain(args.clone()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let controllers: Vec<&str> = sidecars
            .iter()
            .map(|c| known(c["image"].as_str().unwrap()).unwrap().name)
            .collect();
        assert_eq!(
            parsed.process().string("controllers"),
            controllers.join(",")
        );
        for c in &sidecars {
            let d = known(c["image"].as_str().unwrap()).unwrap();
            let own = standalone_flags(d)
                .parse(std::iter::once(d.binary.to_string()).chain(strings(&c["args"])))
                .unwrap();
            let own = own.controller(None);
            let merged = parsed.controller(Some(d.name));
            for flag in d.flags() {
                let name = flag.name;
                if name == "leader-election-per-controller" {
                    continue;
                }
                if process_names.contains(&name) || flag.scope == Scope::Process {
                    // Process-wide: as this container set it, unless a note says why not.
                    if own.is_set(name) && !announced(&report, name) && name != "csi-address" {
                        assert_eq!(
                            parsed.process().value(name),
                            own.value(name),
                            "{}: --{name}",
                            d.name
                        );
                    }
                    continue;
                }
                assert_eq!(merged.value(name), own.value(name), "{}: --{name}", d.name);
            }
            // Every mount and variable of the sidecar is in the merged container.
            for key in ["volumeMounts", "env"] {
                for item in c[key].as_sequence().into_iter().flatten() {
                    assert!(
                        aio[key].as_sequence().unwrap().contains(item),
                        "{key} {item:?} of {} is missing",
                        d.name
                    );
                }
            }
        }
        if parsed.process().bool("leader-election") {
            assert!(parsed.process().bool("leader-election-per-controller"));
        }
    }
    // Converting again changes nothing: no sidecar image is left.
    let (again, second) = convert(&out, TABLE, &Options::default()).unwrap();
    assert_eq!(docs(&again), after);
    assert!(
        second
            .lines
            .iter()
            .all(|l| l.ends_with("no sidecar images; unchanged")),
        "{second:?}"
    );
    (after, report)
}

fn find<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter().find(|d| d["metadata"]["name"] == name).unwrap()
}

fn aio_container(doc: &Value) -> Value {
    containers(doc)
        .into_iter()
        .find(|c| c["name"] == NAME)
        .unwrap()
}

#[test]
fn hostpath_statefulset_with_every_sidecar() {
    let (after, report) = round_trip(HOSTPATH);
    let set = find(&after, "csi-hostpathplugin");
    let aio = aio_container(set);
    let args = strings(&aio["args"]);
    assert!(args.contains(&"--v=5".to_string()), "{args:?}");
    // The first merged sidecar's spelling of the one socket: the health monitor's $(ADDRESS)
    // (= /csi/csi.sock) once csi-sidecars runs it, the registrar's path before.
    assert!(
        args.contains(&"--csi-address=/csi/csi.sock".to_string())
            || args.contains(&"--csi-address=$(ADDRESS)".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--health-port=9898".to_string()));
    assert!(args.contains(&"--provisioner-worker-threads=5".to_string()));
    assert!(args.contains(&"--feature-gates=Topology=true".to_string()));
    // The driver stays first, the merged container takes the first sidecar's place.
    let names: Vec<String> = containers(set)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names[0], "hostpath");
    // The registrar's /registration and the data dir are mounted once each.
    let mounts: Vec<&str> = aio["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/csi", "/registration", "/csi-data-dir"]);
    assert_eq!(aio["securityContext"]["privileged"], true);
    // The image and the report.
    assert!(
        aio["image"]
            .as_str()
            .unwrap()
            .starts_with("csi-sidecars/csi-sidecars:v")
    );
    let text = report.lines.join("\n");
    assert!(
        text.contains("StatefulSet default/csi-hostpathplugin: "),
        "{text}"
    );
    assert!(text.contains("kept container hostpath"), "{text}");
    assert!(
        text.contains("RBAC: ServiceAccount csi-hostpathplugin-sa"),
        "{text}"
    );
    for image in ["csi-snapshotter", "csi-external-health-monitor-controller"] {
        let in_table = TABLE.iter().any(|d| d.binary == image);
        assert_eq!(
            text.contains(&format!("({image}")) || text.contains(&format!("/{image}:")),
            !in_table,
            "{image} is reported as kept iff csi-sidecars does not run it: {text}"
        );
    }
}

#[test]
fn cloud_block_driver_with_five_sidecars() {
    let (after, report) = round_trip(CLOUD_BLOCK);
    let deployment = find(&after, "block-csi-controller");
    let aio = aio_container(deployment);
    let args = strings(&aio["args"]);
    // Same everywhere: global once.
    for global in [
        "--timeout=60s",
        "--v=2",
        "--leader-election",
        "--leader-election-per-controller",
        "--kube-api-qps=20",
        "--kube-api-burst=100",
    ] {
        assert!(args.contains(&global.to_string()), "{global}: {args:?}");
    }
    // The socket is the same through two mount paths: the first container's form wins.
    assert!(
        args.contains(&"--csi-address=$(ADDRESS)".to_string()),
        "{args:?}"
    );
    // Different per controller: prefixed.
    assert!(
        args.contains(&"--provisioner-retry-interval-max=30m".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--attacher-retry-interval-max=5m".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--resizer-handle-volume-inuse-error=false".to_string()));
    assert!(args.contains(&"--provisioner-default-fstype=ext4".to_string()));
    // Both mount paths of the socket directory are kept.
    let mounts: Vec<&str> = aio["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/var/lib/csi/sockets/pluginproxy/", "/csi"]);
    // Resources: one sidecar's requests per merged container, summed.
    let merged = args[0]
        .trim_start_matches("--controllers=")
        .split(',')
        .count() as i64;
    assert_eq!(
        aio["resources"]["requests"]["cpu"],
        format!("{}m", 10 * merged).as_str()
    );
    let bytes = |v: &Value| csi_controller::quantity::quantity_value(v.as_str().unwrap()).unwrap();
    assert_eq!(
        bytes(&aio["resources"]["requests"]["memory"]),
        40 * merged * 1024 * 1024
    );
    assert_eq!(
        bytes(&aio["resources"]["limits"]["memory"]),
        256 * merged * 1024 * 1024
    );
    assert_eq!(aio["securityContext"]["readOnlyRootFilesystem"], true);
    let text = report.lines.join("\n");
    assert!(text.contains("resources.requests summed"), "{text}");
    assert!(text.contains("24.5 MiB"), "{text}");
    assert!(text.contains("--leader-election-per-controller"), "{text}");
    // The node side: registrar and probe in one container.
    let node = aio_container(find(&after, "block-csi-node"));
    assert_eq!(
        strings(&node["args"])[0],
        "--controllers=node-driver-registrar,livenessprobe"
    );
    assert!(
        strings(&node["args"]).contains(
            &"--node-driver-registrar-kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)"
                .to_string()
        ) || strings(&node["args"])
            .contains(&"--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)".to_string()),
        "{:?}",
        node["args"]
    );
    assert!(report.not_converted == 0);
}

#[test]
fn nfs_style_driver_with_two_sidecars() {
    let (after, report) = round_trip(NFS);
    let controller = aio_container(find(&after, "csi-nfs-controller"));
    let args = strings(&controller["args"]);
    assert_eq!(args[0], "--controllers=provisioner,livenessprobe");
    // -v differed (2 in both: agrees); the probe's endpoint is the only HTTP endpoint.
    assert!(args.contains(&"--v=2".to_string()), "{args:?}");
    assert!(
        args.contains(&"--http-endpoint=localhost:29652".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-election-namespace=kube-system".to_string()));
    assert!(
        args.contains(&"--livenessprobe-probe-timeout=3s".to_string()),
        "{args:?}"
    );
    assert_eq!(controller["resources"]["requests"]["cpu"], "20m");
    assert_eq!(controller["resources"]["requests"]["memory"], "40Mi");
    assert_eq!(controller["resources"]["limits"]["memory"], "500Mi");
    // The registrar's exec probe runs csi-sidecars now.
    let node = aio_container(find(&after, "csi-nfs-node"));
    let probe = strings(&node["livenessProbe"]["exec"]["command"]);
    assert_eq!(probe[0], "/csi-sidecars");
    assert_eq!(probe[1], "--controllers=node-driver-registrar");
    assert!(
        probe.contains(&"--node-driver-registrar-mode=kubelet-registration-probe".to_string()),
        "{probe:?}"
    );
    let parsed = aggregate_flags(NAME, TABLE).parse(probe.clone()).unwrap();
    assert_eq!(
        parsed
            .controller(Some("node-driver-registrar"))
            .string("mode"),
        "kubelet-registration-probe"
    );
    let text = report.lines.join("\n");
    assert!(
        text.contains("livenessProbe ran /csi-node-driver-registrar"),
        "{text}"
    );
}

const POD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
spec:
  template:
    spec:
      containers:
";

fn sidecar(name: &str, image: &str, args: &[&str], mount: &str) -> String {
    format!(
        "        - name: {name}\n          image: {image}\n          args: [{}]\n          volumeMounts:\n            - name: socket\n              mountPath: {mount}\n",
        args.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn two_driver_sockets_are_not_merged() {
    let text = format!(
        "{POD}{}{}",
        sidecar(
            "a",
            "x/csi-attacher:v1",
            &["--csi-address=/a/csi.sock"],
            "/a"
        ),
        sidecar(
            "p",
            "x/csi-provisioner:v1",
            &["--csi-address=/p/other.sock"],
            "/p"
        )
    );
    let (out, report) = convert(&text, TABLE, &Options::default()).unwrap();
    assert_eq!(docs(&out), docs(&text), "left unchanged");
    assert_eq!(report.not_converted, 1);
    let text = report.lines.join("\n");
    assert!(text.contains("NOT converted"), "{text}");
    assert!(text.contains("--csi-address differs"), "{text}");
}

#[test]
fn the_same_mount_path_for_two_volumes_is_not_merged() {
    let text = format!(
        "{POD}{}        - name: p\n          image: x/csi-provisioner:v1\n          volumeMounts:\n            - name: other\n              mountPath: /a\n",
        sidecar(
            "a",
            "x/csi-attacher:v1",
            &["--csi-address=/a/csi.sock"],
            "/a"
        ),
    );
    let (_, report) = convert(&text, TABLE, &Options::default()).unwrap();
    let text = report.lines.join("\n");
    assert!(
        text.contains("NOT converted") && text.contains("mountPath"),
        "{text}"
    );
}

#[test]
fn unknown_flags_and_images_are_kept_and_reported() {
    let text = format!(
        "{POD}{}{}{}",
        sidecar(
            "a",
            "x/csi-attacher:v1",
            &["--csi-address=/csi/csi.sock"],
            "/csi"
        ),
        sidecar(
            "p",
            "x/csi-provisioner:v1",
            &["--csi-address=/csi/csi.sock", "--made-up-flag=1"],
            "/csi"
        ),
        sidecar("z", "x/some-other-sidecar:v1", &["--whatever"], "/csi"),
    );
    let (out, report) = convert(&text, TABLE, &Options::default()).unwrap();
    let after = docs(&out);
    let names: Vec<String> = containers(&after[0])
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [NAME, "p", "z"]);
    let text = report.lines.join("\n");
    assert!(
        text.contains("container p (x/csi-provisioner:v1) unchanged"),
        "{text}"
    );
    assert!(text.contains("made-up-flag"), "{text}");
    assert!(
        text.contains("container z (x/some-other-sidecar:v1): not a sidecar"),
        "{text}"
    );
    assert_eq!(report.not_converted, 0);
}

#[test]
fn conflicting_environment_is_not_merged() {
    let text = format!(
        "{POD}{}          env: [{{name: A, value: \"1\"}}]\n{}          env: [{{name: A, value: \"2\"}}]\n",
        sidecar(
            "a",
            "x/csi-attacher:v1",
            &["--csi-address=/csi/csi.sock"],
            "/csi"
        ),
        sidecar(
            "r",
            "x/csi-resizer:v1",
            &["--csi-address=/csi/csi.sock"],
            "/csi"
        ),
    );
    let (_, report) = convert(&text, TABLE, &Options::default()).unwrap();
    let text = report.lines.join("\n");
    assert!(
        text.contains("NOT converted") && text.contains("name \"A\""),
        "{text}"
    );
}

#[test]
fn differing_shared_flags_are_prefixed_and_verbosity_takes_the_highest() {
    let text = format!(
        "{POD}{}{}",
        sidecar(
            "a",
            "x/csi-attacher:v1",
            &["--csi-address=/csi/csi.sock", "--timeout=10s", "-v=2"],
            "/csi"
        ),
        sidecar(
            "r",
            "x/csi-resizer:v1",
            &["-csi-address", "/csi/csi.sock", "--timeout=20s", "--v=4"],
            "/csi"
        ),
    );
    let (out, report) = convert(&text, TABLE, &Options::default()).unwrap();
    let aio = aio_container(&docs(&out)[0]);
    let args = strings(&aio["args"]);
    assert_eq!(
        args,
        [
            "--controllers=attacher,resizer",
            "--csi-address=/csi/csi.sock",
            "--v=4",
            "--attacher-timeout=10s",
            "--resizer-timeout=20s",
        ]
    );
    assert!(
        report.lines.iter().any(|l| l.contains("-v differed")),
        "{report:?}"
    );
}

#[test]
fn images_are_matched_by_their_name() {
    assert_eq!(
        descriptor_for_image(TABLE, "host:5000/a/b/csi-attacher:v4.13.0").map(|d| d.name),
        Some("attacher")
    );
    assert_eq!(
        descriptor_for_image(TABLE, "csi-provisioner@sha256:00").map(|d| d.name),
        Some("provisioner")
    );
    assert_eq!(
        descriptor_for_image(TABLE, "x/livenessprobe").map(|d| d.name),
        Some("livenessprobe")
    );
    assert!(descriptor_for_image(TABLE, "x/csi-attacher-fork:v1").is_none());
}

#[test]
fn socket_meaning_resolves_variables_and_mounts() {
    let c: Value = serde_yaml::from_str(
        "env: [{name: ADDRESS, value: /var/lib/csi/sockets/pluginproxy/csi.sock}]\n\
         volumeMounts: [{name: socket-dir, mountPath: /var/lib/csi/sockets/pluginproxy/}]\n",
    )
    .unwrap();
    assert_eq!(
        socket_meaning(&c, "$(ADDRESS)"),
        "volume socket-dir: /csi.sock"
    );
    let probe: Value =
        serde_yaml::from_str("volumeMounts: [{name: socket-dir, mountPath: /csi}]").unwrap();
    assert_eq!(
        socket_meaning(&probe, "unix:///csi/csi.sock"),
        "volume socket-dir: /csi.sock"
    );
    assert_eq!(
        socket_meaning(&probe, "/elsewhere/x.sock"),
        "/elsewhere/x.sock"
    );
}

#[test]
fn the_cli_reads_a_file_and_writes_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.yaml");
    let output = dir.path().join("out.yaml");
    std::fs::write(&input, NFS).unwrap();
    let code = main(&[
        "-f".to_string(),
        input.display().to_string(),
        "-o".to_string(),
        output.display().to_string(),
        "--image=registry.example/csi-sidecars:v9".to_string(),
    ]);
    assert_eq!(code, 0);
    let out = std::fs::read_to_string(&output).unwrap();
    assert!(
        out.contains("image: registry.example/csi-sidecars:v9"),
        "{out}"
    );
    assert_eq!(main(&["--bogus".to_string()]), 2);
}

#[test]
fn a_workload_without_containers_is_left_as_it_is() {
    let text =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 1\n";
    let (out, report) = convert(text, TABLE, &Options::default()).unwrap();
    assert_eq!(docs(&out), docs(text));
    assert!(report.lines.is_empty(), "{report:?}");
}

/// `text` without the container items named in `names`: from the `- name: <name>` line to the
/// item's last line, with the comment lines directly above it.
fn without_items(text: &str, names: &[String]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let content = |l: &str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let named = lines[i]
            .trim()
            .strip_prefix("- name: ")
            .is_some_and(|n| names.iter().any(|x| x == n));
        if !named {
            i += 1;
            continue;
        }
        let mut lead = i;
        while lead > 0 && lines[lead - 1].trim_start().starts_with('#') {
            lead -= 1;
        }
        let mut end = i + 1;
        for (k, l) in lines.iter().enumerate().skip(i + 1) {
            if content(l) && indent(l) <= indent(lines[i]) {
                break;
            }
            if content(l) {
                end = k + 1;
            }
        }
        keep[lead..end].iter_mut().for_each(|k| *k = false);
        i = end;
    }
    lines
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(l, _)| *l)
        .collect()
}

#[test]
fn comments_and_layout_outside_the_sidecars_are_kept() {
    for fixture in [HOSTPATH, CLOUD_BLOCK, NFS] {
        let (out, report) = convert(fixture, TABLE, &Options::default()).unwrap();
        assert!(
            !report.lines.iter().any(|l| l.contains("written anew")),
            "{report:?}"
        );
        let sidecars: Vec<String> = docs(fixture)
            .iter()
            .flat_map(containers)
            .filter(|c| known(c["image"].as_str().unwrap()).is_some())
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert!(sidecars.len() >= 2);
        // Everything but the sidecars' items and the new one is the same text.
        assert_eq!(
            without_items(fixture, &sidecars),
            without_items(&out, &[NAME.to_string()]),
            "{out}"
        );
        // Comments are there to be kept: each fixture has some outside the sidecars.
        let kept = without_items(fixture, &sidecars)
            .lines()
            .filter(|l| l.contains('#'))
            .count();
        assert!(kept >= 3, "{kept} comments");
    }
    // The comments inside a merged sidecar go with it.
    let (out, _) = convert(NFS, TABLE, &Options::default()).unwrap();
    assert!(
        !out.contains("# Answers the kubelet's liveness probe"),
        "{out}"
    );
    assert!(
        !out.contains("# deleting a large directory takes long"),
        "{out}"
    );
    assert!(out.contains("# The driver itself.\n"), "{out}");
    assert!(
        out.contains("      hostNetwork: true   # the NFS server"),
        "{out}"
    );
}

#[test]
fn a_layout_the_editor_does_not_follow_is_written_anew_and_reported() {
    let text = format!(
        "# gone with the rewrite\n{}",
        "kind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [\
         {name: p, image: sig-storage/csi-provisioner:v6.4.0, args: [--csi-address=/csi/csi.sock]}, \
         {name: d, image: example/driver}]}}}\n---\nkind: Service # kept\nmetadata: {name: s}\n"
    );
    let (out, report) = convert(&text, TABLE, &Options::default()).unwrap();
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.starts_with("Deployment d: written anew, without its comments and layout (")),
        "{report:?}"
    );
    assert!(
        out.ends_with("---\nkind: Service # kept\nmetadata: {name: s}\n"),
        "{out}"
    );
    let converted = docs(&out);
    assert_eq!(converted.len(), 2);
    assert_eq!(aio_container(&converted[0])["name"], NAME);
}
