//! Inline volumes, StorageClasses, volume-handle repair and the name lookups.

use serde_json::{Value, json};

use super::*;

pub(super) fn inline_volumes(out: &mut Vec<Case>) {
    let wrap = |namespace: &'static str| move |volume: Value| json!({"op": "inline", "volume": volume, "namespace": namespace});
    let volumes: Vec<(&str, Value)> = vec![
        (
            "gce-pd",
            json!({"name": "v", "gcePersistentDisk": {"pdName": "d1"}}),
        ),
        (
            "gce-pd-ro-part",
            json!({"name": "v", "gcePersistentDisk": {"pdName": "d1", "readOnly": true, "partition": 2, "fsType": "ext4"}}),
        ),
        (
            "aws-ebs",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-1", "partition": 1}}),
        ),
        (
            "aws-ebs-bad",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "aws://us-east-1a/disk-1"}}),
        ),
        (
            "aws-ebs-ro",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "vol-1", "readOnly": true, "fsType": "xfs"}}),
        ),
        (
            "cinder",
            json!({"name": "v", "cinder": {"volumeID": "c1", "readOnly": true, "fsType": "ext4"}}),
        ),
        (
            "azure-disk",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/disks/d"}}),
        ),
        (
            "azure-disk-full",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "kind": "Managed", "cachingMode": "ReadWrite", "fsType": "ext4", "readOnly": true}}),
        ),
        (
            "azure-disk-empty-caching",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "cachingMode": ""}}),
        ),
        (
            "azure-disk-shared",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "kind": "Shared"}}),
        ),
        (
            "azure-file",
            json!({"name": "v", "azureFile": {"secretName": "azure-storage-account-acct-secret", "shareName": "share"}}),
        ),
        (
            "azure-file-other-secret",
            json!({"name": "v", "azureFile": {"secretName": "plain", "shareName": "share", "readOnly": true}}),
        ),
        (
            "vsphere",
            json!({"name": "v", "vsphereVolume": {"volumePath": "[ds] d.vmdk", "fsType": "ext4"}}),
        ),
        (
            "vsphere-policy",
            json!({"name": "v", "vsphereVolume": {"volumePath": "[ds] d.vmdk", "storagePolicyName": "gold"}}),
        ),
        (
            "portworx",
            json!({"name": "v", "portworxVolume": {"volumeID": "px", "fsType": "ext4"}}),
        ),
        (
            "portworx-ro",
            json!({"name": "v", "portworxVolume": {"volumeID": "px", "readOnly": true}}),
        ),
        ("unsupported", json!({"name": "v", "emptyDir": {}})),
    ];
    for (name, volume) in volumes {
        for namespace in ["", "pod-ns"] {
            out.push(Case {
                name: format!("inline/{name}/namespace={namespace}"),
                input: wrap(namespace)(volume.clone()),
            });
        }
    }
}

pub(super) fn storage_classes(out: &mut Vec<Case>) {
    let plugins = [
        "kubernetes.io/gce-pd",
        "kubernetes.io/aws-ebs",
        "kubernetes.io/cinder",
        "kubernetes.io/azure-disk",
        "kubernetes.io/azure-file",
        "kubernetes.io/vsphere-volume",
        "kubernetes.io/portworx-volume",
    ];
    let parameters: Vec<(&str, Value)> = vec![
        ("none", Value::Null),
        ("empty", json!({})),
        ("fstype", json!({"fstype": "ext4"})),
        ("fsType", json!({"fsType": "xfs", "type": "pd-ssd"})),
        ("FSTYPE", json!({"FSTYPE": "xfs"})),
        ("zone", json!({"zone": "us-central1-a"})),
        ("Zone", json!({"Zone": "us-central1-a", "type": "gp2"})),
        ("zones", json!({"zones": "us-central1-a,us-central1-b"})),
        ("zones-spaces", json!({"zones": "a, b,"})),
        ("iops", json!({"iopsPerGB": "10", "type": "io1"})),
        (
            "vsphere",
            json!({"datastore": "ds", "diskformat": "thin", "hostFailuresToTolerate": "1", "forceProvisioning": "true", "cacheReservation": "1", "diskstripes": "2", "objectspacereservation": "3", "iopslimit": "4", "storagePolicyName": "gold", "unknown": "x"}),
        ),
        (
            "portworx",
            json!({"openstorage.io/auth-secret-name": "px", "openstorage.io/auth-secret-namespace": "pxns", "repl": "2"}),
        ),
        (
            "azure",
            json!({"skuName": "Standard_LRS", "cachingMode": "ReadOnly", "kind": "managed"}),
        ),
        (
            "azure-zoned",
            json!({"skuName": "Premium_LRS", "zoned": "true", "zones": "1,2"}),
        ),
    ];
    let topologies: Vec<(&str, Value)> = vec![
        ("none", Value::Null),
        (
            "ga-zone",
            json!([{"matchLabelExpressions": [{"key": GA_ZONE, "values": ["us-central1-a"]}]}]),
        ),
        (
            "beta-zone",
            json!([{"matchLabelExpressions": [{"key": BETA_ZONE, "values": ["us-central1-a", "us-central1-b"]}]}]),
        ),
        (
            "other-key",
            json!([{"matchLabelExpressions": [{"key": "kubernetes.io/hostname", "values": ["n1"]}]}]),
        ),
        (
            "two-terms",
            json!([
                {"matchLabelExpressions": [{"key": GA_ZONE, "values": ["a"]}, {"key": "x", "values": ["y"]}]},
                {"matchLabelExpressions": [{"key": BETA_ZONE, "values": ["b"]}]}
            ]),
        ),
        ("empty-term", json!([{}])),
        (
            "azure-numeric",
            json!([{"matchLabelExpressions": [{"key": "topology.disk.csi.azure.com/zone", "values": ["0", "eastus-1", "12"]}]}]),
        ),
        ("empty-list", json!([])),
    ];
    for plugin in plugins {
        let short = plugin.trim_start_matches("kubernetes.io/");
        for (pname, params) in &parameters {
            for (tname, topology) in &topologies {
                let mut sc = json!({
                    "metadata": {"name": "sc"},
                    "provisioner": plugin,
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": "WaitForFirstConsumer",
                });
                if !params.is_null() {
                    sc["parameters"] = params.clone();
                }
                if !topology.is_null() {
                    sc["allowedTopologies"] = topology.clone();
                }
                out.push(Case {
                    name: format!("{short}/sc/parameters={pname},allowedTopologies={tname}"),
                    input: json!({"op": "sc", "plugin": plugin, "sc": sc}),
                });
            }
        }
    }
    out.push(Case {
        name: "unsupported/sc/unknown-plugin".to_owned(),
        input: json!({"op": "sc", "plugin": "kubernetes.io/nfs", "sc": {"metadata": {"name": "sc"}, "provisioner": "kubernetes.io/nfs"}}),
    });
}

pub(super) fn repairs_and_names(out: &mut Vec<Case>) {
    let gce = "pd.csi.storage.gke.io";
    let repairs: Vec<(&str, &str, &str, &str)> = vec![
        (
            "zonal-unspecified",
            gce,
            "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "zonal-zone-known",
            gce,
            "projects/UNSPECIFIED/zones/us-east1-b/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-unspecified",
            gce,
            "projects/UNSPECIFIED/regions/UNSPECIFIED/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-known",
            gce,
            "projects/UNSPECIFIED/regions/us-east1/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-bad-node-zone",
            gce,
            "projects/UNSPECIFIED/regions/UNSPECIFIED/disks/d",
            "projects/p1/zones/zone/instances/n",
        ),
        (
            "project-known",
            gce,
            "projects/p/zones/z/disks/d",
            "whatever",
        ),
        (
            "short-handle",
            gce,
            "projects/UNSPECIFIED/disks/d",
            "projects/p1/zones/z/instances/n",
        ),
        (
            "short-node",
            gce,
            "projects/UNSPECIFIED/zones/z/disks/d",
            "node-1",
        ),
        (
            "bad-regionality",
            gce,
            "projects/UNSPECIFIED/global/z/disks/d",
            "projects/p1/zones/z/instances/n",
        ),
        ("ebs", "ebs.csi.aws.com", "vol-1", "i-1"),
        ("azure-disk", "disk.csi.azure.com", "uri", "n"),
        ("unknown", "hostpath.csi.k8s.io", "h", "n"),
    ];
    for (name, driver, handle, node) in repairs {
        out.push(Case {
            name: format!("repair/{name}"),
            input: json!({"op": "repair", "driver": driver, "handle": handle, "node": node}),
        });
    }
    for name in [
        "kubernetes.io/gce-pd",
        "kubernetes.io/aws-ebs",
        "kubernetes.io/cinder",
        "kubernetes.io/azure-disk",
        "kubernetes.io/azure-file",
        "kubernetes.io/vsphere-volume",
        "kubernetes.io/portworx-volume",
        "pd.csi.storage.gke.io",
        "ebs.csi.aws.com",
        "cinder.csi.openstack.org",
        "disk.csi.azure.com",
        "file.csi.azure.com",
        "csi.vsphere.vmware.com",
        "pxd.portworx.com",
        "kubernetes.io/nfs",
        "hostpath.csi.k8s.io",
        "",
    ] {
        out.push(Case {
            name: format!("names/{name}"),
            input: json!({"op": "names", "plugin": name}),
        });
    }
}
