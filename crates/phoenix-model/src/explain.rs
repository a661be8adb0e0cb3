//! `phoenix explain CODE`: for every diagnostic code, what it means, an example and the fix.
//! The match is exhaustive, so a new code cannot ship without its explanation. No I/O.

use crate::diag::Code;

/// The long form of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub meaning: &'static str,
    pub example: &'static str,
    pub fix: &'static str,
}

const fn e(meaning: &'static str, example: &'static str, fix: &'static str) -> Explanation {
    Explanation {
        meaning,
        example,
        fix,
    }
}

/// The explanation of `code`.
pub fn explain(code: Code) -> Explanation {
    use Code::*;
    match code {
        FileUnreadable => e(
            "A configuration file phoenix needs is missing or cannot be read. Findings that only follow from it (guests it defines \"not defined\" elsewhere) are left out until it is fixed. Only regular files are read: a FIFO, device or socket is refused without waiting on it, and a stack's compose file or `phoenix.json` that is a symbolic link out of the configuration directory, or a loop of links, is refused at the stack that names it (its content is never read, so never shown).",
            "--config /usr/local/phoenix_hypervisor/etc without phoenix_lxc_configs.json",
            "Pass the directory that holds phoenix_hypervisor_config.json, or restore the file; check its permissions.",
        ),
        JsonSyntax => e(
            "The file is not plain JSON: a syntax error, a byte-order mark anywhere but at the very start (one there is PHX-W043), or bytes that are not UTF-8. Nothing in it is read, and its knock-on findings are left out.",
            "{\"lxc_configs\": {\"101\": {\"name\": \"web\",}}}   (trailing comma)",
            "Fix the marked position; JSON allows no comments or trailing commas. `jq . FILE` shows the same error.",
        ),
        TooLarge => e(
            "The file is larger than phoenix reads for its kind (16 MiB for a configuration file, 1 MiB for a compose or stack file; docs/inputs.md lists them) or nested deeper than 64 levels; phoenix refuses it rather than exhaust memory.",
            "--config pointing at a directory where phoenix_lxc_configs.json is a disk image",
            "Check that the right file was given; real configurations are a few hundred KiB.",
        ),
        DuplicateKey => e(
            "One JSON object names the same key twice. JSON readers disagree on which copy wins; both places are named.",
            "\"network_config\": {…}, …, \"network_config\": {…}",
            "Keep exactly one copy (phoenix and jq read the last).",
        ),
        TypeMismatch => e(
            "A value has the wrong JSON type or form for its key.",
            "\"cores\": \"four\"",
            "Write the type `phoenix schema` documents for the key (here a number: \"cores\": 4).",
        ),
        MissingField => e(
            "A field that has no default is missing.",
            "a firewall rule without \"type\"",
            "Add the field; `phoenix schema` documents it.",
        ),
        YamlSyntax => e(
            "A stack's compose file is not valid YAML; the stack's compose checks are skipped.",
            "stacks/portainer_service/docker-compose.yml with a mis-indented key",
            "Fix the marked line; `docker stack config -c FILE` shows what Docker makes of it.",
        ),
        DuplicateVmid => e(
            "Two guests (an LXC and a VM, or two VMs) use the same VMID.",
            "\"vmid\": 101 in the VM file while lxc_configs has \"101\"",
            "Give each guest its own VMID.",
        ),
        DuplicateAddress => e(
            "Two NICs have the same static address.",
            "101 and 102 both at 172.16.100.12/24",
            "Give each NIC its own address.",
        ),
        DuplicateMac => e(
            "Two NICs have the same MAC address.",
            "\"hwaddr\": \"02:00:00:00:01:01\" on two guests",
            "Give each NIC its own MAC, or drop `hwaddr` and let Proxmox generate one.",
        ),
        DuplicateHostname => e(
            "Two guests have the same name, which is also their DNS name.",
            "two guests named \"traefik\"",
            "Rename one of them.",
        ),
        UnknownDependency => e(
            "A dependency names a guest no file defines.",
            "\"dependencies\": [\"105\"] with no guest 105",
            "Name an existing VMID, or remove the dependency.",
        ),
        UnknownCloneSource => e(
            "A clone source names a guest no file defines.",
            "\"clone_from_ctid\": \"900\" with no container 900",
            "Define the template guest, or clone from one that exists.",
        ),
        DependencyCycle => e(
            "Guests depend on each other in a cycle, so no creation order exists.",
            "101 depends on 102 and 102 on 101",
            "Remove one dependency of the cycle.",
        ),
        AddressOutsideBridge => e(
            "A static address lies outside the subnet of the bridge its NIC is on.",
            "\"bridge\": \"vmbr100\", \"ip\": \"10.0.0.5/24\" with vmbr100 = 172.16.100.0/24",
            "Pick an address inside the bridge's subnet, or put the NIC on the right bridge.",
        ),
        UnknownBridge => e(
            "A NIC is on a bridge the hypervisor file does not define.",
            "\"bridge\": \"vmbr2\"",
            "Use vmbr0, its public VLAN (vmbr0.20) or the mesh bridge, or define the bridge.",
        ),
        GatewayOutsideSubnet => e(
            "A NIC's gateway is not in the NIC's subnet, so it cannot be reached.",
            "\"ip\": \"172.16.100.12/24\", \"gw\": \"10.0.0.1\"",
            "Use the gateway of that subnet (the mesh gateway is its first address).",
        ),
        MultipleGateways => e(
            "More than one NIC of a guest carries a default gateway.",
            "net0 and net1 both with \"gw\"",
            "Keep `gw` on the NIC that leads out; remove it from the other.",
        ),
        InvalidAddress => e(
            "An address, subnet or MAC cannot be parsed, or has host bits where none may be.",
            "\"subnet\": \"172.16.100.1/24\"",
            "Write it in the form the hint shows (172.16.100.0/24, 10.0.0.13, 02:00:00:00:01:01).",
        ),
        DhcpRoute => e(
            "A Traefik service points at a guest with no static address, so no route can name it (the bash system wrote http://dhcp:PORT).",
            "\"traefik_service\" on a guest whose only NIC is \"ip\": \"dhcp\"",
            "Give the guest a static address on the mesh.",
        ),
        SchemeMismatch => e(
            "A route's scheme contradicts what the service speaks.",
            "\"scheme\": \"http\" for the Step-CA on 9000, which serves HTTPS only",
            "Write the scheme the service speaks, or leave `scheme` out and let phoenix infer it.",
        ),
        UnknownEntrypoint => e(
            "A route (or a stack's Traefik label) uses an entrypoint Traefik does not define.",
            "\"entrypoints\": [\"webs\"]",
            "Use web, websecure, mesh or traefik, or define the entrypoint under `traefik.entrypoints`.",
        ),
        InvalidName => e(
            "A name holds characters that are not allowed (names are never passed through a shell).",
            "\"name\": \"web; rm -rf /\"",
            "Use letters, digits, `-` and `_`.",
        ),
        InvalidPath => e(
            "A path is not an absolute, plain path. Paths phoenix hands to Proxmox or writes to (mount points, certificate files, stack file destinations) hold only letters, digits and `/ . _ - + @`: no blank, no shell metacharacter, no `,` or `=` that would split a Proxmox property string.",
            "\"host_path\": \"/srv/$(touch /tmp/x)\"",
            "Write an absolute path of plain names without `..`.",
        ),
        InvalidRule => e(
            "A firewall rule field is not valid for Proxmox.",
            "\"action\": \"ALLOW\"",
            "Use the values the hint lists (ACCEPT, DROP, REJECT; tcp, udp; 80, \"80,443\").",
        ),
        InvalidVolume => e(
            "An LXC `template` or a VM `template_image` is not what Proxmox accepts as a volume: `storage:vztmpl/file.tar.zst` (`storage:content/file` for an image), an absolute plain path, or a plain file name. It reaches the Proxmox API as it is, so nothing else is let through.",
            "\"template\": \"local:vztmpl/debian$(touch /tmp/x).tar.zst\"",
            "Give the volume id `pveam list STORAGE` shows, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.",
        ),
        InvalidSecret => e(
            "A secret reference is malformed.",
            "\"admin_password\": {\"env\": \"1BAD\"}",
            "Use {\"env\": \"NAME\"} or {\"file\": \"/absolute/path\"}.",
        ),
        UnknownGuest => e(
            "A reference (a role, a certificate's guest) names a guest no file defines.",
            "\"roles\": {\"gateway\": 111}",
            "Name an existing VMID.",
        ),
        InvalidSan => e(
            "A certificate name or SAN is malformed.",
            "\"sans\": [\"*.*.example.org\"]",
            "Use DNS names and IP addresses.",
        ),
        InvalidValue => e(
            "A value is outside its allowed range or set.",
            "\"tag\": 5000",
            "Use a value from the range or set the hint names.",
        ),
        UnknownStack => e(
            "A VM's `docker_stacks` names a stack no file defines.",
            "\"docker_stacks\": [\"qdrant\"] with only `qdrant_service` defined",
            "Define the stack in phoenix_stacks_config.json (or stacks/<name>/phoenix.json), or fix the name.",
        ),
        UnknownKey => e(
            "A key nothing reads, in this or any version of the bash system; usually a typo.",
            "\"memroy_mb\": 2048",
            "Fix the spelling against `phoenix schema`, or remove the key.",
        ),
        NotSupportedYet => e(
            "A key some version of the bash system read, which phoenix reads but does not apply yet: nothing changes on the host or guest for it. `phoenix plan` ends with the list per guest.",
            "\"gpu_assignment\": \"0\"",
            "Nothing to fix in the file; allow the code (`--allow PHX-W002` or phoenix-lint.json) once you accept that these keys are not applied.",
        ),
        UnusedKey => e(
            "A key no version of the bash system read; it has no effect anywhere.",
            "\"author\": \"…\"",
            "Remove it, or allow the code.",
        ),
        LegacyForm => e(
            "A form an older bash system accepted. Phoenix reads it and normalises it; the hint is the current spelling (docs/legacy-forms.md).",
            "\"dns_nameservers\": \"10.0.0.1 8.8.8.8\"",
            "Rewrite it as the hint shows (here \"dns_nameservers\": [\"10.0.0.1\", \"8.8.8.8\"]).",
        ),
        StaleRuleAddress => e(
            "A firewall rule names an address inside a platform subnet that no guest or host has: left over from a renumbering, the rule matches nothing.",
            "\"dest\": \"10.0.0.12\" after Traefik moved to 172.16.100.12",
            "Write the guest's current address, or remove the rule.",
        ),
        StaleNameserver => e(
            "A nameserver is an address inside a platform subnet that no guest or host has.",
            "host \"dns_nameservers\": [\"10.0.0.153\"] after Nginx moved",
            "Use the mesh DNS (the mesh gateway) or an upstream resolver.",
        ),
        StaleSan => e(
            "A certificate SAN is an address inside a platform subnet that no guest or host has.",
            "\"sans\": [\"10.0.0.12\"] after the move to 172.16.100.12",
            "Replace it with the guest's current address.",
        ),
        CertificateGap => e(
            "A guest's certificate does not cover its service name or an address clients dial.",
            "the Traefik certificate without 172.16.100.12",
            "Add the name or address to the entry's `sans`.",
        ),
        MacvlanRawLines => e(
            "A macvlan NIC is expressed through raw `lxc.net.N.*` lines, which the Proxmox API cannot manage.",
            "\"lxc_options\": [\"lxc.net.0.type: macvlan\"]",
            "Write \"kind\": \"macvlan\" on the NIC instead; phoenix writes the raw lines.",
        ),
        MacvlanUnreachable => e(
            "A macvlan child cannot be reached from the host it runs on (a kernel property of macvlan).",
            "Nginx on a macvlan of vmbr0.20, probed from the host",
            "Reach it through its other NIC, or use a veth NIC on the VLAN.",
        ),
        DhcpPrimaryNic => e(
            "A Traefik service's first NIC is DHCP; phoenix routes through the guest's static NIC instead.",
            "101: net0 dhcp on vmbr0.20, net1 172.16.100.10",
            "Nothing to fix if the static NIC is the right one; say so with an explicit route or allow the code.",
        ),
        SchemeInferred => e(
            "A route gives no scheme; phoenix infers it from the port, where the bash system always used http.",
            "\"traefik_service\": {\"name\": \"portainer\", \"port\": 9443}",
            "Write \"scheme\": \"https\" (or \"http\").",
        ),
        PlaintextSecret => e(
            "A secret is written in plain text in the configuration. It still works; phoenix never prints it.",
            "\"admin_password\": \"…\"",
            "Use {\"env\": \"NAME\"} or {\"file\": \"/root/.secrets/NAME\"}.",
        ),
        CaDirMounted => e(
            "The CA's key directory is bind-mounted into another guest, which can then sign anything.",
            "102 mounts /mnt/pve/…/103/ssl",
            "Remove the mount; guests get their certificates and the root from phoenix.",
        ),
        UnsupportedFeature => e(
            "A guest feature phoenix does not provision yet; the guest is created without it.",
            "\"features\": [\"vllm\"]",
            "Provision it by hand for now, or allow the code.",
        ),
        DuplicateRule => e(
            "A firewall rule repeats an earlier one of the same list.",
            "two identical \"port\": \"443\" rules",
            "Remove the later copy.",
        ),
        MissingOptionalFile => e(
            "An optional file the configuration names is absent.",
            "a stack `files[].source` that does not exist",
            "Create it, or fix the path (relative paths are relative to the configuration directory).",
        ),
        UnsafeKeyMode => e(
            "A private key's mode lets other users read it; phoenix writes a safe mode instead.",
            "\"permissions\": \"644\"",
            "Write 600 or 640.",
        ),
        OverlayOnlyRoute => e(
            "The internal proxy is not a Swarm node, but routes to a port only the Swarm overlay reaches.",
            "Traefik (an LXC) routing to a service published in host mode on the overlay only",
            "Publish the port in ingress mode, or route to a node address.",
        ),
        NameserverNotMeshDns => e(
            "A guest's nameserver is an address of the host on which the mesh DNS (dnsmasq) does not listen, so its lookups time out; the bash system forced VMs onto the host's management address this way.",
            "VM 1001: \"nameserver\": \"10.0.0.13\" while dnsmasq listens on 172.16.100.1",
            "Point the guest at an address the mesh DNS listens on, or add the address to `dns_server.listen_addresses`.",
        ),
        UnknownSnapshot => e(
            "A guest clones another at a snapshot that nothing creates: the source is not a template whose `template_snapshot_name` is that snapshot. The clone fails unless the snapshot already exists on the node.",
            "910: \"clone_from_ctid\": \"901\", \"template_snapshot_name\": \"final-form\" while 901 names no snapshot",
            "Give the source template \"template_snapshot_name\": \"final-form\", or drop the snapshot from the clone to clone the current state.",
        ),
        RoutePortMismatch => e(
            "A guest's `traefik_service.port` is where Traefik sends the route, but the stacks the guest deploys publish the service elsewhere, or publish that port for a different container port than the stack's `traefik.http.services.*.loadbalancer.server.port` label names. Unless something outside the stacks listens there, the route answers 502.",
            "VM 1001: \"traefik_service\": {\"name\": \"portainer\", \"port\": 9444} while portainer_service publishes 9443 (`ports: [{target: 9443, published: 9443}]`)",
            "Set `traefik_service.port` to the port the compose file publishes for the labelled container port, or publish the route's port in the compose file.",
        ),
        RouteNameUncovered => e(
            "A name routed through the platform (`<traefik_service.name>.<domain>`, or a stack's `Host()` rule) is not among the SANs of any server certificate of the guest that terminates TLS for it: the gateway for public names, the internal proxy for every name it serves on a TLS entrypoint. Clients get a certificate for another name and refuse the connection. One finding per guest, listing the names.",
            "the proxy's certificate `traefik.internal.thinkheads.ai` without SANs while Traefik routes portainer.internal.thinkheads.ai",
            "Add the names (or `*.<domain>`) to the `sans` of that guest's certificate in certificate-manifest.json.",
        ),
        ClientCertFromStepCa => e(
            "A `cert_type: client` entry in a configuration with a step-ca guest. step-ca's default x509 leaf template gives every certificate both serverAuth and clientAuth, so the bash system got a certificate that also passes as a server's; `phoenix ca issue --step-ca` refuses to issue it rather than issue it with the wrong usage.",
            "{\"common_name\": \"nginx-gateway-client\", \"cert_type\": \"client\", …} with Step-CA 103",
            "Issue client certificates with phoenix's built-in CA (`--ca-dir`), or give the step-ca provisioner a template with clientAuth alone: in ca.json `\"options\": {\"x509\": {\"templateFile\": \"templates/client.tpl\"}}`, the template `{\"subject\": {{ toJson .Subject }}, \"sans\": {{ toJson .SANs }}, \"keyUsage\": [\"digitalSignature\"], \"extKeyUsage\": [\"clientAuth\"]}`.",
        ),
        CertPathOutsideMounts => e(
            "A manifest path is a host path meant to lie inside one of the guest's mount points (phoenix maps it through the mount to the path inside the guest). Outside every mount point it is used unchanged inside the guest, where the service is unlikely to look for it. When the path lies in another guest's mount, or the `post_renewal_command` runs in another guest (`pct exec N`, `qm guest exec N`), the finding names that guest.",
            "guest 101 mounts /mnt/pve/quickOS/lxc-persistent-data/101/ssl at /etc/nginx/ssl, but \"cert_path\": \"/mnt/pve/quickOS/lxc-persistent-data/101/certs/nginx.crt\"",
            "Put the path under one of the guest's mounts' `host_path`, or correct `guest_id` when the certificate belongs to the guest the finding names.",
        ),
        TemplateWithSnapshots => e(
            "A guest marked `is_template` also takes snapshots (`enable_lifecycle_snapshots`, or its own `template_snapshot_name`). Proxmox refuses both orders: a template cannot be snapshotted, and a guest holding snapshots cannot become a template. Clones from `ID@snapshot` need the snapshots, so phoenix takes them and leaves the guest a stopped guest (never started) instead of converting it.",
            "901: \"is_template\": true, \"enable_lifecycle_snapshots\": true (910 clones 901@final-form)",
            "Keep it as it is (the clones work from its snapshots), or drop the snapshots (and `template_snapshot_name` from its clones) to have it converted to a template.",
        ),
        ByteOrderMark => e(
            "The file starts with a UTF-8 byte-order mark (EF BB BF). JSON does not allow it, but jq 1.6 (which the bash system used) skips one at the start of its input, so the bash system read the file. phoenix reads it too, and says so. A second mark, or one anywhere else, is an error (PHX-E002) for jq and phoenix alike.",
            "a file saved by an editor as \"UTF-8 with BOM\"",
            "Save the file as UTF-8 without a BOM (most editors call it \"UTF-8\").",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_explanation_is_written_out() {
        for c in Code::ALL {
            let x = explain(*c);
            for part in [x.meaning, x.example, x.fix] {
                assert!(part.len() > 5, "{}", c.as_str());
            }
        }
    }
}
