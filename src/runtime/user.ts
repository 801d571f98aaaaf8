// The user a container runs as: `-u` or the image's `User`, as `user[:group]` with
// names or numbers. Names are looked up in the image's own /etc/passwd and /etc/group
// (never the host's), the way docker does; a numeric user without a group gets the
// passwd entry's group, or 0.

export interface ResolvedUser {
  uid: number;
  gid: number;
  home: string;
}

type FileReader = (path: string) => Promise<string | undefined>;

function parseDb(text: string | undefined): string[][] {
  return (text ?? '').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

const NUMBER = /^\d+$/;

export async function resolveUser(spec: string | undefined, readFile: FileReader): Promise<ResolvedUser> {
  const [user = '', group] = (spec ?? '').split(':');
  const passwd = parseDb(await readFile('etc/passwd'));
  let uid = 0;
  let gid = 0;
  let home = '/';
  if (user !== '') {
    const entry = passwd.find((p) => (NUMBER.test(user) ? p[2] === user : p[0] === user));
    if (!entry && !NUMBER.test(user)) throw new Error(`unable to find user ${user}: no matching entry in the image's /etc/passwd`);
    uid = NUMBER.test(user) ? Number(user) : Number(entry![2]);
    gid = entry ? Number(entry[3]) : 0;
    home = entry?.[5] || '/';
  } else {
    home = passwd.find((p) => p[2] === '0')?.[5] || '/';
  }
  if (group !== undefined && group !== '') {
    if (NUMBER.test(group)) gid = Number(group);
    else {
      const entry = parseDb(await readFile('etc/group')).find((g) => g[0] === group);
      if (!entry) throw new Error(`unable to find group ${group}: no matching entry in the image's /etc/group`);
      gid = Number(entry[2]);
    }
  }
  return { uid, gid, home };
}
