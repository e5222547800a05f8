//! Topology of a PV or StorageClass during translation: the in-tree zone and region labels
//! (`topology.kubernetes.io/zone`, or the beta `failure-domain.beta.kubernetes.io/zone`) in node
//! affinity and PV labels, and each driver's own topology key.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume,
    TopologySelectorLabelRequirement, TopologySelectorTerm, VolumeNodeAffinity,
};

use crate::{Error, Result};

/// Zones of a multi-zone PV label are joined with this.
pub(crate) const LABEL_MULTI_ZONE_DELIMITER: &str = "__";
pub(crate) const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
pub(crate) const LABEL_TOPOLOGY_REGION: &str = "topology.kubernetes.io/region";
pub(crate) const LABEL_FAILURE_DOMAIN_BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
pub(crate) const LABEL_FAILURE_DOMAIN_BETA_REGION: &str =
    "failure-domain.beta.kubernetes.io/region";

/// Derives the region of a set of zones, or says why it cannot.
pub(crate) type RegionParser = fn(&[String]) -> Result<String>;

fn terms_mut(pv: &mut PersistentVolume) -> Option<&mut Vec<NodeSelectorTerm>> {
    let terms = &mut pv
        .spec
        .as_mut()?
        .node_affinity
        .as_mut()?
        .required
        .as_mut()?
        .node_selector_terms;
    (!terms.is_empty()).then_some(terms)
}

fn terms(pv: &PersistentVolume) -> &[NodeSelectorTerm] {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default()
}

fn label<'a>(pv: &'a PersistentVolume, key: &str) -> Option<&'a String> {
    pv.metadata.labels.as_ref().and_then(|l| l.get(key))
}

/// Renames every node-affinity requirement on `old_key` to `new_key`.
pub(crate) fn replace_topology(pv: &mut PersistentVolume, old_key: &str, new_key: &str) {
    let Some(terms) = terms_mut(pv) else { return };
    for term in terms {
        for requirement in term.match_expressions.iter_mut().flatten() {
            if requirement.key == old_key {
                requirement.key = new_key.to_owned();
            }
        }
    }
}

/// The distinct values of every node-affinity requirement on `key`, sorted.
pub(crate) fn get_topology_values(pv: &PersistentVolume, key: &str) -> Vec<String> {
    let values: BTreeSet<String> = terms(pv)
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .filter(|r| r.key == key)
        .flat_map(|r| r.values.iter().flatten().cloned())
        .collect();
    values.into_iter().collect()
}

/// Adds `key In zones` (trimmed, non-empty, distinct, sorted) to every node selector term,
/// creating the node affinity when there is none; an error (and nothing done) without a valid
/// zone. The translations ignore that error, as upstream's do.
pub(crate) fn add_topology(pv: &mut PersistentVolume, key: &str, zones: &[&str]) -> Result<()> {
    let zones: BTreeSet<String> = zones
        .iter()
        .map(|z| z.trim_matches(is_go_space).to_owned())
        .filter(|z| !z.is_empty())
        .collect();
    if zones.is_empty() {
        return Err(Error::new("there are no valid zones to add to pv"));
    }
    let spec = pv.spec.get_or_insert_with(Default::default);
    let affinity = spec
        .node_affinity
        .get_or_insert_with(VolumeNodeAffinity::default);
    let required = affinity.required.get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required.node_selector_terms = vec![NodeSelectorTerm::default()];
    }
    let requirement = NodeSelectorRequirement {
        key: key.to_owned(),
        operator: "In".to_owned(),
        values: Some(zones.into_iter().collect()),
    };
    for term in &mut required.node_selector_terms {
        term.match_expressions
            .get_or_insert_with(Vec::new)
            .push(requirement.clone());
    }
    Ok(())
}

/// Go's `unicode.IsSpace`, which `strings.TrimSpace` trims.
fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    ) || (c as u32 > 0xff && c.is_whitespace())
}

/// Whether any node selector term of the affinity has a requirement on `key`.
pub fn topology_key_exist(key: &str, affinity: Option<&VolumeNodeAffinity>) -> bool {
    affinity
        .and_then(|a| a.required.as_ref())
        .map(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .any(|r| r.key == key)
        })
        .unwrap_or(false)
}

/// The zone and region labels a PV uses: the GA pair unless only the beta zone label appears
/// (in node affinity first, then in the PV's labels).
pub(crate) fn get_topology_label(pv: &PersistentVolume) -> (&'static str, &'static str) {
    let affinity = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref());
    if topology_key_exist(LABEL_TOPOLOGY_ZONE, affinity) {
        return (LABEL_TOPOLOGY_ZONE, LABEL_TOPOLOGY_REGION);
    }
    if topology_key_exist(LABEL_FAILURE_DOMAIN_BETA_ZONE, affinity) {
        return (
            LABEL_FAILURE_DOMAIN_BETA_ZONE,
            LABEL_FAILURE_DOMAIN_BETA_REGION,
        );
    }
    if label(pv, LABEL_TOPOLOGY_ZONE).is_some() {
        return (LABEL_TOPOLOGY_ZONE, LABEL_TOPOLOGY_REGION);
    }
    if label(pv, LABEL_FAILURE_DOMAIN_BETA_ZONE).is_some() {
        return (
            LABEL_FAILURE_DOMAIN_BETA_ZONE,
            LABEL_FAILURE_DOMAIN_BETA_REGION,
        );
    }
    (LABEL_TOPOLOGY_ZONE, LABEL_TOPOLOGY_REGION)
}

/// In-tree → CSI: the zone requirement moves to the driver's key (or is made from the zone
/// label when the affinity has none); a beta region requirement becomes the GA one.
pub(crate) fn translate_topology_from_in_tree_to_csi(pv: &mut PersistentVolume, csi_key: &str) {
    let (zone_label, region_label) = get_topology_label(pv);
    if !get_topology_values(pv, zone_label).is_empty() {
        replace_topology(pv, zone_label, csi_key);
    } else if let Some(value) = label(pv, zone_label).cloned() {
        let zones: Vec<&str> = value.split(LABEL_MULTI_ZONE_DELIMITER).collect();
        let _ = add_topology(pv, csi_key, &zones);
    }
    if region_label == LABEL_FAILURE_DOMAIN_BETA_REGION
        && !get_topology_values(pv, region_label).is_empty()
    {
        replace_topology(pv, region_label, LABEL_TOPOLOGY_REGION);
    }
}

/// CSI → in-tree: the driver's key becomes the zone label again, a region requirement is added
/// to each term that lacks one (when the plugin can derive regions), and the zone (and single
/// region) labels are set when the PV has none.
pub(crate) fn translate_topology_from_csi_to_in_tree(
    pv: &mut PersistentVolume,
    csi_key: &str,
    region_parser: Option<RegionParser>,
) -> Result<()> {
    let (zone_label, _) = get_topology_label(pv);
    replace_topology(pv, csi_key, zone_label);
    if let Some(parser) = region_parser {
        region_topology_handler(pv, parser)
            .map_err(|e| Error::new(format!("Failed to handle region topology. error: {e}")))?;
    }
    let zones = get_topology_values(pv, zone_label);
    if !zones.is_empty() {
        let labels = pv.metadata.labels.get_or_insert_with(Default::default);
        labels
            .entry(zone_label.to_owned())
            .or_insert_with(|| zones.join(LABEL_MULTI_ZONE_DELIMITER));
    }
    Ok(())
}

fn region_topology_handler(pv: &mut PersistentVolume, parser: RegionParser) -> Result<()> {
    let (zone_label, region_label) = get_topology_label(pv);
    let Some(terms) = terms_mut(pv) else {
        return Ok(());
    };
    for term in terms.iter_mut() {
        let mut region_exists = false;
        let mut zones = Vec::new();
        for requirement in term.match_expressions.iter().flatten() {
            if requirement.key == region_label {
                region_exists = true;
                break;
            } else if requirement.key == zone_label {
                zones.extend(requirement.values.iter().flatten().cloned());
            }
        }
        if region_exists {
            continue;
        }
        let region = parser(&zones)?;
        term.match_expressions
            .get_or_insert_with(Vec::new)
            .push(NodeSelectorRequirement {
                key: region_label.to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![region]),
            });
    }
    let regions = get_topology_values(pv, region_label);
    if let [region] = regions.as_slice() {
        let labels = pv.metadata.labels.get_or_insert_with(Default::default);
        labels
            .entry(region_label.to_owned())
            .or_insert_with(|| region.clone());
    }
    Ok(())
}

/// StorageClass allowed topologies: a zone expression (GA or beta key) moves to the driver's key.
pub(crate) fn translate_allowed_topologies(
    terms: &[TopologySelectorTerm],
    key: &str,
) -> Vec<TopologySelectorTerm> {
    terms
        .iter()
        .map(|term| {
            let expressions: Vec<TopologySelectorLabelRequirement> = term
                .match_label_expressions
                .iter()
                .flatten()
                .map(|e| {
                    if e.key == LABEL_FAILURE_DOMAIN_BETA_ZONE || e.key == LABEL_TOPOLOGY_ZONE {
                        TopologySelectorLabelRequirement {
                            key: key.to_owned(),
                            values: e.values.clone(),
                        }
                    } else {
                        e.clone()
                    }
                })
                .collect();
            TopologySelectorTerm {
                match_label_expressions: (!expressions.is_empty()).then_some(expressions),
            }
        })
        .collect()
}

/// One allowed-topology term with one expression `key In values`.
pub(crate) fn generate_topology_selectors(key: &str, values: &[&str]) -> Vec<TopologySelectorTerm> {
    vec![TopologySelectorTerm {
        match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
            key: key.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }]),
    }]
}

/// vSphere in-tree → CSI: zone and region each move to the driver's keys, or are made from the
/// labels (a label value is one zone, never split).
pub(crate) fn translate_topology_from_in_tree_vsphere_to_csi(
    pv: &mut PersistentVolume,
    zone_key: &str,
    region_key: &str,
) {
    let (zone_label, region_label) = get_topology_label(pv);
    for (label_key, csi_key) in [(zone_label, zone_key), (region_label, region_key)] {
        if !get_topology_values(pv, label_key).is_empty() {
            replace_topology(pv, label_key, csi_key);
        } else if let Some(value) = label(pv, label_key).cloned()
            && !value.is_empty()
        {
            let _ = add_topology(pv, csi_key, &[value.as_str()]);
        }
    }
}

/// vSphere CSI → in-tree: the driver's keys become the zone and region labels, and the first
/// value of each becomes the PV label when there is none.
pub(crate) fn translate_topology_from_csi_to_in_tree_vsphere(
    pv: &mut PersistentVolume,
    zone_key: &str,
    region_key: &str,
) {
    let (zone_label, region_label) = get_topology_label(pv);
    replace_topology(pv, zone_key, zone_label);
    replace_topology(pv, region_key, region_label);
    for key in [zone_label, region_label] {
        if let Some(first) = get_topology_values(pv, key).into_iter().next() {
            let labels = pv.metadata.labels.get_or_insert_with(Default::default);
            labels.entry(key.to_owned()).or_insert(first);
        }
    }
}

#[cfg(test)]
mod tests;
