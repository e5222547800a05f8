use super::*;

const DEPLOYMENT: &str = "\
# The controller.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: c   # its name
spec:
  # two, for leader election
  replicas: 2
  template:
    spec:
      containers:
        # The driver.
        - name: driver
          image: example/driver   # pinned by the overlay
          args: [\"--endpoint=unix:///csi/csi.sock\"]

        # Provisions volumes.
        - name: csi-provisioner
          image: sig-storage/csi-provisioner:v6.4.0
          args:
            - --csi-address=/csi/csi.sock
        # Attaches them.
        - name: csi-attacher
          image: sig-storage/csi-attacher:v4.13.0
        - name: other
          image: example/other
          # kept as it is
          args:
          - --x
      # volumes follow
      volumes:
        - name: socket-dir
          emptyDir: {}
";

fn parse(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn merged() -> Mapping {
    let Value::Mapping(m) = parse(
        "
name: csi-sidecars
image: csi-sidecars/csi-sidecars:v0.1.0
args: ['--controllers=provisioner,attacher', '--csi-address=/csi/csi.sock', 'a: b', '']
env: []
resources:
  requests: {cpu: 20m, memory: 64Mi}
note: \"two\\nlines\"
",
    ) else {
        unreachable!()
    };
    m
}

/// What the edit must parse to: the containers replaced in the parsed document.
fn expected(text: &str, replace: usize, container: &Mapping, remove: &[usize]) -> Value {
    let mut doc = parse(text);
    let containers = doc["spec"]["template"]["spec"]["containers"]
        .as_sequence_mut()
        .unwrap();
    let mut out = Vec::new();
    for (i, c) in containers.drain(..).enumerate() {
        if i == replace {
            out.push(Value::Mapping(container.clone()));
        } else if !remove.contains(&i) {
            out.push(c);
        }
    }
    *containers = out;
    doc
}

#[test]
fn documents_split_at_their_markers_and_join_again() {
    let text = "# lead\na: 1\n---\nb: 2\n--- # c\nc: |\n  ---x\n---\n";
    let docs = split_documents(text);
    assert_eq!(
        docs,
        [
            "# lead\na: 1\n",
            "---\nb: 2\n",
            "--- # c\nc: |\n  ---x\n",
            "---\n"
        ]
    );
    assert_eq!(docs.concat(), text);
    assert_eq!(split_documents(""), [""]);
    assert_eq!(split_documents("---\na: 1"), ["---\na: 1"]);
}

#[test]
fn only_the_changed_items_change() {
    let out = edit_containers(DEPLOYMENT, 1, &merged(), &[2]).unwrap();
    assert_eq!(
        parse(&out),
        expected(DEPLOYMENT, 1, &merged(), &[2]),
        "{out}"
    );
    // Every comment but those of the replaced and removed items is kept, in place.
    for kept in [
        "# The controller.\n",
        "  name: c   # its name\n",
        "  # two, for leader election\n",
        "        # The driver.\n",
        "          image: example/driver   # pinned by the overlay\n",
        "          # kept as it is\n          args:\n          - --x\n",
        "      # volumes follow\n",
    ] {
        assert!(out.contains(kept), "{kept:?} lost:\n{out}");
    }
    for gone in ["# Provisions volumes.", "# Attaches them.", "csi-attacher"] {
        assert!(!out.contains(gone), "{gone:?} kept:\n{out}");
    }
    // The new item is laid out as the others: items two spaces under their key.
    assert!(
        out.contains(
            "\n        - name: csi-sidecars\n          image: csi-sidecars/csi-sidecars:v0.1.0\n          args:\n            - --controllers=provisioner,attacher\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("          resources:\n            requests:\n              cpu: 20m\n"),
        "{out}"
    );
    // Up to the replaced item and after the removed one, the text is the same bytes.
    let head = DEPLOYMENT.find("        # Provisions").unwrap();
    assert_eq!(&out[..head], &DEPLOYMENT[..head]);
    let tail = DEPLOYMENT.find("        - name: other").unwrap();
    assert!(out.ends_with(&DEPLOYMENT[tail..]));
}

#[test]
fn the_last_item_and_compact_sequences() {
    let text = "\
kind: DaemonSet
spec:
  template:
    spec:
      containers:
      - name: driver
        image: d
      - name: registrar
        image: r
        args:
        - --v=5
      # trailing comment
    # after
";
    let c = merged();
    let out = edit_containers(text, 1, &c, &[]).unwrap();
    assert_eq!(parse(&out), expected(text, 1, &c, &[]), "{out}");
    assert!(
        out.contains("      - name: csi-sidecars\n        image: "),
        "{out}"
    );
    assert!(
        out.contains("        args:\n        - --controllers="),
        "{out}"
    );
    assert!(
        out.ends_with("      # trailing comment\n    # after\n"),
        "{out}"
    );

    // Removing the first item, replacing the last; no line break at the end.
    let text = text.trim_end_matches("      # trailing comment\n    # after\n");
    let text = text.trim_end();
    let out = edit_containers(text, 1, &c, &[0]).unwrap();
    assert_eq!(parse(&out), expected(text, 1, &c, &[0]), "{out}");
    assert!(!out.ends_with('\n'), "{out:?}");
}

#[test]
fn windows_line_breaks_stay() {
    let text = DEPLOYMENT.replace('\n', "\r\n");
    let out = edit_containers(&text, 1, &merged(), &[2]).unwrap();
    assert_eq!(parse(&out), expected(&text, 1, &merged(), &[2]));
    assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
}

#[test]
fn styles_it_does_not_follow_are_refused() {
    let c = merged();
    for (text, why) in [
        (
            "spec:\n  template:\n    spec:\n      containers: [{name: a}, {name: b}]\n",
            "on the key's line",
        ),
        (
            "spec: {template: {spec: {containers: []}}}\n",
            "on the key's line",
        ),
        ("spec:\n  template:\n    spec: {}\n", "on the key's line"),
        ("kind: x\n", "spec: not found"),
        ("--- {a: 1}\n", "content on the --- line"),
        (
            "spec:\n  template:\n    spec:\n      containers:\n        - name: a\n",
            "1 items",
        ),
    ] {
        let e = edit_containers(text, 1, &c, &[]).unwrap_err();
        assert!(e.contains(why), "{text}: {e}");
    }
}
