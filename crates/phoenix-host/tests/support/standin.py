#!/usr/bin/env python3
"""A recorded stand-in for zpool, zfs, lsblk, blkid, wipefs, update-initramfs, useradd,
chpasswd and visudo (installed under those names first on PATH by the tests): each call
appends its argv to LOG (chpasswd's stdin to LOG.stdin), reads and answers from STATE (JSON),
and changes STATE - or, for the account tools, the files under STATE's `root` - the way the
real command would. It never touches a disk or this machine's accounts."""
import json, os, sys

STATE, LOG = sys.argv[1], sys.argv[2]
name = os.path.basename(sys.argv[3])
args = sys.argv[4:]
with open(LOG, 'a') as f:
    f.write(json.dumps([name] + args) + '\n')
with open(STATE) as f:
    st = json.load(f)

SIZE = {'quota', 'refquota', 'reservation', 'refreservation', 'recordsize', 'volsize', 'volblocksize'}

def size(v):
    # zfs_nicestrtonum: binary units, a fraction truncated.
    if v == 'none':
        return '0'
    u = v[-1].upper()
    shift = {'K': 10, 'M': 20, 'G': 30, 'T': 40, 'P': 50, 'E': 60}.get(u)
    if shift is None:
        return str(int(v))
    n = v[:-1]
    return str(int(float(n) * 2 ** shift)) if '.' in n else str(int(n) * 2 ** shift)

def norm(k, v):
    return size(v) if k in SIZE else v

def save():
    with open(STATE, 'w') as f:
        json.dump(st, f, indent=1)

def fail(msg, code=1):
    sys.stderr.write(msg + '\n')
    sys.exit(code)

pools, datasets, disks = st.setdefault('pools', {}), st.setdefault('datasets', {}), st.setdefault('disks', {})

if name in ('zpool', 'zfs') and st.get('module_loaded') is False:
    fail("The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' as root to load them.")
elif name == 'zpool' and args[:1] == ['list']:
    for p in sorted(pools):
        print(p)
elif name == 'zpool' and args[:1] == ['create']:
    rest = args[1:]
    force = '-f' in rest
    rest = [a for a in rest if a != '-f']
    while rest and rest[0] == '-o':
        rest = rest[2:]
    pool, vdevs = rest[0], [a for a in rest[1:] if a.startswith('/')]
    for d in vdevs:
        info = disks.get(d)
        if info is None:
            fail("cannot open '%s': no such device" % d)
        if (info.get('partitions') or info.get('fstype')) and not force:
            fail('invalid vdev specification\nuse \'-f\' to override the following errors:\n%s contains a filesystem' % d)
    pools[pool] = {'vdevs': rest[1:]}
    datasets[pool] = {}
    for d in vdevs:
        disks[d] = {'fstype': 'zfs_member', 'label': pool}
    save()
elif name == 'zpool' and args[:1] == ['labelclear']:
    disks[args[-1]] = {k: v for k, v in disks[args[-1]].items() if k not in ('fstype', 'label')}
    save()
elif name == 'wipefs':
    disks[args[-1]] = {}
    save()
elif name == 'zfs' and args[:1] == ['list']:
    for d in sorted(datasets):
        print(d)
elif name == 'zfs' and args[:1] == ['get']:
    rest = [a for a in args[1:] if a not in ('-H', '-p')]
    while rest[0] == '-o':
        rest = rest[2:]
    props, names = rest[0].split(','), rest[1:]
    for n in names:
        if n not in datasets:
            fail("cannot open '%s': dataset does not exist" % n)
        for p in props:
            print('%s\t%s\t%s' % (n, p, datasets[n].get(p, {'quota': '0', 'sync': 'standard', 'compression': 'on', 'recordsize': '131072'}.get(p, '-'))))
elif name == 'zfs' and args[:1] == ['create']:
    rest, props = args[1:], {}
    while rest[0] == '-o':
        k, v = rest[1].split('=', 1)
        props[k] = norm(k, v)
        rest = rest[2:]
    n = rest[0]
    if n.split('/')[0] not in pools:
        fail("cannot create '%s': no such pool" % n)
    if n in datasets:
        fail("cannot create '%s': dataset already exists" % n)
    datasets[n] = props
    save()
elif name == 'zfs' and args[:1] == ['set']:
    n = args[-1]
    for kv in args[1:-1]:
        k, v = kv.split('=', 1)
        datasets[n][k] = norm(k, v)
    save()
elif name == 'lsblk':
    d = args[-1]
    info = disks.get(d)
    if info is None:
        fail('lsblk: %s: not a block device' % d, 32)
    dev = {'name': d, 'type': 'disk', 'fstype': info.get('fstype'), 'mountpoint': info.get('mountpoint')}
    if info.get('partitions'):
        dev['children'] = [{'name': p, 'type': 'part', 'fstype': None, 'mountpoint': None} for p in info['partitions']]
    print(json.dumps({'blockdevices': [dev]}))
elif name == 'blkid':
    info = disks.get(args[-1]) or {}
    out = []
    if info.get('fstype'):
        out.append('TYPE=' + info['fstype'])
    if info.get('label'):
        out.append('LABEL=' + info['label'])
    if info.get('partitions'):
        out.append('PTTYPE=gpt')
    if not out:
        sys.exit(2)
    print('\n'.join(['DEVNAME=' + args[-1]] + out))
elif name == 'update-initramfs':
    pass
elif name == 'useradd':
    user, root = args[-1], st['root']
    with open(root + '/etc/passwd') as f:
        lines = f.read().splitlines()
    if any(l.split(':')[0] == user for l in lines):
        fail("useradd: user '%s' already exists" % user, 9)
    uid = 1000 + len(lines)
    home = '/home/' + user
    with open(root + '/etc/passwd', 'a') as f:
        f.write('%s:x:%d:%d::%s:%s\n' % (user, uid, uid, home, args[args.index('--shell') + 1]))
    with open(root + '/etc/group', 'a') as f:
        f.write('%s:x:%d:\n' % (user, uid))
    with open(root + '/etc/shadow', 'a') as f:
        f.write('%s:!:20000:0:99999:7:::\n' % user)
    if '--create-home' in args:
        os.makedirs(root + home, exist_ok=True)
elif name == 'chpasswd':
    data = sys.stdin.read()
    with open(LOG + '.stdin', 'a') as f:
        f.write(data)
    root = st['root']
    with open(root + '/etc/shadow') as f:
        lines = f.read().splitlines()
    for entry in data.splitlines():
        user, hashed = entry.split(':', 1)
        lines = [':'.join([user, hashed] + l.split(':')[2:]) if l.split(':')[0] == user else l for l in lines]
    with open(root + '/etc/shadow', 'w') as f:
        f.write('\n'.join(lines) + '\n')
elif name == 'visudo':
    # visudo -cf FILE: every line a comment or `USER ALL=(ALL:ALL) ALL`.
    import re
    with open(args[-1]) as f:
        bad = [l for l in f.read().splitlines() if l and not l.startswith('#')
               and not re.match(r'^[a-z_][a-z0-9_-]* ALL=\(ALL(:ALL)?\) (NOPASSWD: )?ALL$', l)]
    if bad:
        print('%s:1:1: syntax error' % args[-1])
        sys.exit(1)
    print('%s: parsed OK' % args[-1])
else:
    fail('stand-in: %s %s is not modelled' % (name, ' '.join(args)), 2)
