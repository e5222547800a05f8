//! Property tests of StorageClass secret parameters and their templates: any template and any
//! parameter map give a reference or an error, never a panic, and templates built from known
//! tokens resolve as a small model of Go's `os.Expand` says. Also the quantities that claims
//! and drivers' capacities pass through: any string reads as a value or nothing, and every
//! byte count written as a quantity reads back as itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use csi_controller::quantity::{bytes_to_quantity, quantity_value};
use csi_controller::secrets::{
    PROVISIONER_SECRET_PARAMS, SecretKind, SecretReferenceError, is_dns1123_label,
    is_dns1123_subdomain, resolve_template, secret_reference, secret_templates,
};
use csi_test_support::fuzz::config;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

/// A piece of a template.
#[derive(Clone, Debug)]
enum Piece {
    /// Text without `$`.
    Text(String),
    /// `${name}` of a token.
    Braced(String),
    /// `$name` of a token made of shell-name characters, followed by a non-name character.
    Bare(String),
}

const TOKENS: &[&str] = &[
    "pv.name",
    "pvc.name",
    "pvc.namespace",
    "pvc.annotations['team']",
];

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[a-z0-9.-]{1,6}".prop_map(Piece::Text),
        "[^$]{1,6}".prop_map(Piece::Text),
        prop_oneof![
            proptest::sample::select(TOKENS).prop_map(str::to_string),
            "[a-z][a-z._]{0,8}",
        ]
        .prop_map(Piece::Braced),
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_map(Piece::Bare),
    ]
}

/// What the pieces resolve to with `params`, and which tokens are missing.
fn model(pieces: &[Piece], params: &HashMap<String, String>) -> (String, String, BTreeSet<String>) {
    let mut template = String::new();
    let mut out = String::new();
    let mut missing = BTreeSet::new();
    for piece in pieces {
        let token = match piece {
            Piece::Text(t) => {
                template.push_str(t);
                out.push_str(t);
                continue;
            }
            Piece::Braced(name) => {
                template.push_str(&format!("${{{name}}}"));
                name
            }
            Piece::Bare(name) => {
                // A following non-name character ends it.
                template.push_str(&format!("${name}/"));
                name
            }
        };
        match params.get(token) {
            Some(v) => out.push_str(v),
            None => {
                missing.insert(token.clone());
            }
        }
        if matches!(piece, Piece::Bare(_)) {
            out.push('/');
        }
    }
    (template, out, missing)
}

fn claim(name: &str, namespace: &str, team: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            annotations: team.map(|t| BTreeMap::from([("team".to_string(), t.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Keys a StorageClass may use for secrets, and some it should not.
fn key() -> impl Strategy<Value = String> {
    let mut keys: Vec<String> = SecretKind::ALL
        .iter()
        .flat_map(|k| {
            let p = k.params();
            [
                Some(p.name_key),
                Some(p.namespace_key),
                p.deprecated_name_key,
                p.deprecated_namespace_key,
            ]
        })
        .flatten()
        .map(str::to_string)
        .collect();
    keys.push("csi.storage.k8s.io/secret-name".into());
    keys.push("csi.storage.k8s.io/secret-namespace".into());
    prop_oneof![
        4 => proptest::sample::select(keys),
        1 => "csi\\.storage\\.k8s\\.io/[a-z-]{0,12}",
        1 => any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,10}",
        "\\$\\{(pv\\.name|pvc\\.name|pvc\\.namespace|pvc\\.annotations\\['team'\\])\\}(-[a-z0-9]{1,4})?",
        "[-a-z0-9${}.'\\[\\]]{0,16}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_template_resolves_or_names_its_missing_tokens(
        template in prop_oneof!["[-a-z0-9${}.'\\[\\]#*@!?_ ]{0,24}", any::<String>()],
        params in proptest::collection::hash_map("[a-z.]{1,8}", any::<String>(), 0..4),
    ) {
        match resolve_template(&template, &params) {
            Ok(resolved) => {
                if !template.contains('$') {
                    prop_assert_eq!(resolved, template);
                }
            }
            Err(err) => {
                prop_assert!(!err.missing.is_empty());
                for token in &err.missing {
                    prop_assert!(!params.contains_key(token));
                }
            }
        }
    }

    #[test]
    fn templates_of_tokens_resolve_as_the_model_says(
        pieces in proptest::collection::vec(piece(), 0..6),
        pv in "[a-z0-9-]{1,10}",
        name in "[a-z0-9-]{1,10}",
        namespace in "[a-z0-9-]{1,10}",
    ) {
        let params = HashMap::from([
            ("pv.name".to_string(), pv),
            ("pvc.name".to_string(), name),
            ("pvc.namespace".to_string(), namespace),
            ("pvc.annotations['team']".to_string(), "blue".to_string()),
        ]);
        let (template, want, missing) = model(&pieces, &params);
        match resolve_template(&template, &params) {
            Ok(got) => {
                prop_assert!(missing.is_empty(), "{:?} resolved despite {:?}", template, missing);
                prop_assert_eq!(got, want, "{:?}", template);
            }
            Err(err) => {
                let got: BTreeSet<String> = err.missing.into_iter().collect();
                prop_assert_eq!(got, missing, "{:?}", template);
            }
        }
    }

    #[test]
    fn any_class_parameters_give_a_valid_reference_or_an_error(
        params in proptest::collection::btree_map(key(), value(), 0..6),
        pv in "[a-z0-9-]{0,12}",
        pvc in proptest::option::of(("[a-z0-9.-]{0,12}", "[a-z0-9-]{0,12}", proptest::option::of("[a-z0-9-]{0,6}"))),
    ) {
        let claim = pvc.map(|(n, ns, team)| claim(&n, &ns, team.as_deref()));
        for kind in SecretKind::ALL {
            match secret_reference(&kind.params(), &params, &pv, claim.as_ref()) {
                Ok(Some(r)) => {
                    prop_assert!(is_dns1123_subdomain(r.name.as_deref().unwrap_or_default()));
                    prop_assert!(is_dns1123_label(r.namespace.as_deref().unwrap_or_default()));
                }
                Ok(None) => {}
                Err(err) => {
                    prop_assert!(!err.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn provisioner_secret_templates_resolve_to_the_claims_names(
        pv in "pvc-[a-z0-9]{1,8}",
        name in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
        namespace in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
        suffix in "(-[a-z0-9]{1,4})?",
        name_token in proptest::sample::select(&["pv.name", "pvc.name", "pvc.namespace"][..]),
        namespace_token in proptest::sample::select(&["pv.name", "pvc.namespace"][..]),
        deprecated in any::<bool>(),
    ) {
        let p = PROVISIONER_SECRET_PARAMS;
        let (name_key, namespace_key) = if deprecated {
            (p.deprecated_name_key.unwrap(), p.deprecated_namespace_key.unwrap())
        } else {
            (p.name_key, p.namespace_key)
        };
        let params = BTreeMap::from([
            (name_key.to_string(), format!("${{{name_token}}}{suffix}")),
            (namespace_key.to_string(), format!("${{{namespace_token}}}")),
        ]);
        prop_assert!(secret_templates(&p, &params).is_ok());
        let value_of = |token: &str| match token {
            "pv.name" => pv.clone(),
            "pvc.name" => name.clone(),
            _ => namespace.clone(),
        };
        let got = secret_reference(&p, &params, &pv, Some(&claim(&name, &namespace, None)));
        let want_name = format!("{}{suffix}", value_of(name_token));
        let want_namespace = value_of(namespace_token);
        let r = got.map_err(|e| TestCaseError::fail(e.to_string()))?.expect("a reference");
        prop_assert_eq!(r.name.as_deref(), Some(want_name.as_str()));
        prop_assert_eq!(r.namespace.as_deref(), Some(want_namespace.as_str()));
        // Without the claim, its tokens are unknown.
        let without = secret_reference(&p, &params, &pv, None);
        if name_token != "pv.name" || namespace_token != "pv.name" {
            let is_resolve_error = matches!(without, Err(SecretReferenceError::Resolve { .. }));
            prop_assert!(is_resolve_error, "{:?}", without);
        }
    }

    #[test]
    fn any_quantity_string_reads_as_a_value_or_nothing(
        q in prop_oneof![
            "[-+]?[0-9]{0,25}(\\.[0-9]{0,12})?([eE][-+]?[0-9]{1,12}|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?",
            any::<String>(),
        ],
    ) {
        let _ = quantity_value(&q);
    }

    #[test]
    fn byte_counts_read_back_from_their_quantity(bytes in prop_oneof![any::<i64>(), (0i64..1 << 20).prop_map(|n| n << 30)]) {
        let q = bytes_to_quantity(bytes);
        prop_assert_eq!(quantity_value(&q.0), Some(bytes), "{}", q.0);
    }
}
