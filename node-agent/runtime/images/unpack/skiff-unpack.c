/*
 * skiff-unpack: applies one OCI image layer to a directory. Hostile-input code.
 *
 *   skiff-unpack --root DIR --whiteouts overlay|apply [--max-bytes N] [--max-entries N] [--max-memory BYTES]
 *                [--lower DIR]... < layer.tar
 *
 * stdin is the *uncompressed* layer tar; the caller (images/layer-unpack.ts) does the gunzip and both
 * digests. Nothing here trusts a path: every parent directory is opened with
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) relative to the
 * root fd, and the last component is always created/changed with *at calls that do not follow it
 * (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, O_EXCL after unlink). So no entry, whiteout or hard link can
 * reach outside DIR, whatever the archive or the directory already holds.
 *
 * Policy (documented in README.md beside this file):
 *   - refused (exit 2): absolute names, any ".." component, an entry whose parent is a symlink or
 *     not a directory, hard links to a directory or to a missing file,
 *     invalid whiteouts, trusted.overlay.* xattrs, sparse files, unknown entry types, bad headers.
 *   - over --max-bytes of file data, or over --max-entries entries (exit 3).
 *   - more memory than --max-memory (default 1 GiB; the process's RLIMIT_AS) (exit 4): what grows
 *     with the layer is a set of 128-bit keyed hashes of the paths it writes and the paths of the
 *     directories whose mtimes are restored at the end, the latter held to a quarter of the ceiling.
 *   - block/char device nodes are skipped and counted: containers get /dev from the runtime.
 *   - setuid/setgid/sticky bits, uid/gid, mtime, symlink targets (verbatim, wherever they point,
 *     also through a hard link to the symlink), hard links, fifos,
 *     security.capability and user.* xattrs are kept; other xattrs are skipped and counted.
 *   - whiteouts: "overlay" writes overlayfs form (char 0/0, trusted.overlay.opaque=y), "apply"
 *     deletes what they name (for full-copy snapshots).
 * On success prints one JSON line of counters on stdout; on failure one line on stderr of the form
 * `entry "NAME": reason` (or a bare reason) and exits non-zero; the caller removes DIR.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define EXIT_SYSTEM 1
#define EXIT_REFUSED 2
#define EXIT_LIMIT 3
#define EXIT_MEMORY 4

#define BLOCK 512
#define IOBUF (1 << 20)
#define MAX_META (1 << 20) /* PAX / GNU long-name records */
#define MAX_XATTRS 64

static const char *current_entry;

static void die(int code, const char *fmt, ...) {
  va_list ap;
  if (current_entry) fprintf(stderr, "entry \"%s\": ", current_entry);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(code);
}

#define DEFAULT_MAX_MEMORY (1ULL << 30)
static uint64_t max_memory = DEFAULT_MAX_MEMORY;

/* WHAT names the allocation that failed; any allocation failing means the ceiling was reached. */
static void out_of_memory(const char *what) {
  current_entry = NULL;
  die(EXIT_MEMORY, "the layer needs more than %" PRIu64 " MiB of memory to unpack (%s); refused", max_memory >> 20, what);
}

/* ---------- buffered stdin ---------- */

static unsigned char *inbuf;
static size_t inpos, inlen;
static int ineof;

static size_t fill(void) {
  if (inpos < inlen) return inlen - inpos;
  if (ineof) return 0;
  inpos = 0;
  for (;;) {
    ssize_t n = read(0, inbuf, IOBUF);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(EXIT_SYSTEM, "read layer stream: %s", strerror(errno));
    inlen = (size_t)n;
    if (n == 0) ineof = 1;
    return inlen;
  }
}

/* Returns 0 at a clean EOF before any byte, dies on a short read. */
static int read_exact(void *dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t avail = fill();
    if (avail == 0) {
      if (got == 0) return 0;
      die(EXIT_REFUSED, "truncated tar archive");
    }
    size_t take = avail < n - got ? avail : n - got;
    memcpy((char *)dst + got, inbuf + inpos, take);
    inpos += take;
    got += take;
  }
  return 1;
}

static void skip_bytes(uint64_t n) {
  while (n > 0) {
    size_t avail = fill();
    if (avail == 0) die(EXIT_REFUSED, "truncated tar archive");
    size_t take = avail < n ? avail : (size_t)n;
    inpos += take;
    n -= take;
  }
}

static uint64_t padded(uint64_t size) {
  /* a base-256 size near 2^64 would wrap to a small skip and desynchronise the headers */
  if (size > UINT64_MAX - BLOCK) die(EXIT_REFUSED, "tar entry size out of range");
  return (size + BLOCK - 1) & ~(uint64_t)(BLOCK - 1);
}

/* ---------- tar headers ---------- */

struct xattr {
  char *name;
  char *value;
  size_t len;
};

struct entry {
  char type;
  char *name;
  char *link;
  uint64_t size;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  dev_t dev;
  struct xattr xattrs[MAX_XATTRS];
  int nxattrs;
};

static uint64_t parse_number(const unsigned char *p, size_t n, const char *field) {
  if (p[0] & 0x80) { /* GNU base-256 */
    if (p[0] & 0x40) die(EXIT_REFUSED, "negative %s in tar header", field);
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; i++) {
      if (v >> 56) die(EXIT_REFUSED, "%s out of range in tar header", field);
      v = (v << 8) | p[i];
    }
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == 0)) i++;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
    if (v >> 60) die(EXIT_REFUSED, "%s out of range in tar header", field);
    v = v * 8 + (uint64_t)(p[i] - '0');
  }
  for (; i < n; i++)
    if (p[i] != ' ' && p[i] != 0) die(EXIT_REFUSED, "malformed %s in tar header", field);
  return v;
}

static char *field_string(const unsigned char *p, size_t n) {
  size_t len = strnlen((const char *)p, n);
  char *s = malloc(len + 1);
  if (!s) out_of_memory("tar header field");
  memcpy(s, p, len);
  s[len] = 0;
  return s;
}

static int all_zero(const unsigned char *b) {
  for (int i = 0; i < BLOCK; i++)
    if (b[i]) return 0;
  return 1;
}

static void check_checksum(const unsigned char *h) {
  uint64_t want = parse_number(h + 148, 8, "checksum");
  uint64_t sum = 0;
  for (int i = 0; i < BLOCK; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  if (sum != want) die(EXIT_REFUSED, "corrupt tar header (checksum mismatch)");
}

static char *read_meta(uint64_t size, const char *what) {
  if (size > MAX_META) die(EXIT_REFUSED, "%s record of %" PRIu64 " bytes is too large", what, size);
  char *buf = malloc(size + 1);
  if (!buf) out_of_memory(what);
  if (size && !read_exact(buf, size)) die(EXIT_REFUSED, "truncated tar archive");
  buf[size] = 0;
  skip_bytes(padded(size) - size);
  return buf;
}

struct pax {
  char *path, *linkpath;
  int has_size, has_uid, has_gid, has_mtime;
  uint64_t size, uid, gid;
  int64_t mtime;
  struct xattr xattrs[MAX_XATTRS];
  int nxattrs;
};

static uint64_t pax_uint(const char *v, size_t len, const char *key) {
  uint64_t x = 0;
  if (len == 0) die(EXIT_REFUSED, "empty PAX %s", key);
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9' || x > UINT64_MAX / 10) die(EXIT_REFUSED, "malformed PAX %s", key);
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  return x;
}

static char *dup_bytes(const char *v, size_t len) {
  char *s = malloc(len + 1);
  if (!s) out_of_memory("PAX record");
  memcpy(s, v, len);
  s[len] = 0;
  return s;
}

/* Each record is exactly `LEN SP KEY=VALUE LF`, LEN counting the whole record in decimal digits
 * only: the length is read digit by digit from the record's first byte (strtoull would skip
 * whitespace and accept signs, letting a record end before its key starts), and every part is
 * checked to lie inside the record before it is touched. */
static void parse_pax(char *buf, uint64_t size, struct pax *px) {
  uint64_t off = 0;
  while (off < size) {
    char *rec = buf + off;
    uint64_t room = size - off, len = 0;
    size_t digits = 0;
    while (digits < room && rec[digits] >= '0' && rec[digits] <= '9') {
      if (++digits > 7) die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": length too long", off);
      len = len * 10 + (uint64_t)(rec[digits - 1] - '0');
    }
    if (digits == 0) die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": no length", off);
    if (digits >= room || rec[digits] != ' ')
      die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": no space after the length", off);
    /* the shortest record is "LEN k=\n" */
    if (len < digits + 4 || len > room)
      die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": length %" PRIu64 " out of bounds", off, len);
    if (rec[len - 1] != '\n')
      die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": no newline at its end", off);
    char *key = rec + digits + 1, *eq = memchr(key, '=', (size_t)(rec + len - 1 - key));
    if (!eq || eq == key) die(EXIT_REFUSED, "malformed PAX record at offset %" PRIu64 ": no KEY=VALUE", off);
    size_t klen = (size_t)(eq - key), vlen = (size_t)(rec + len - 1 - (eq + 1));
    char *val = eq + 1;
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
    if ((KEY("path") || KEY("linkpath")) && memchr(val, 0, vlen))
      die(EXIT_REFUSED, "PAX %.*s holds a NUL byte", (int)klen, key);
    if (KEY("path")) {
      free(px->path);
      px->path = dup_bytes(val, vlen);
    } else if (KEY("linkpath")) {
      free(px->linkpath);
      px->linkpath = dup_bytes(val, vlen);
    } else if (KEY("size")) {
      px->size = pax_uint(val, vlen, "size"), px->has_size = 1;
    } else if (KEY("uid")) {
      px->uid = pax_uint(val, vlen, "uid"), px->has_uid = 1;
    } else if (KEY("gid")) {
      px->gid = pax_uint(val, vlen, "gid"), px->has_gid = 1;
    } else if (KEY("mtime")) {
      size_t ilen = 0;
      int neg = vlen > 0 && val[0] == '-';
      while (neg + ilen < vlen && val[neg + ilen] != '.') ilen++;
      uint64_t t = pax_uint(val + neg, ilen, "mtime");
      if (t > INT64_MAX) die(EXIT_REFUSED, "PAX mtime out of range");
      px->mtime = neg ? -(int64_t)t : (int64_t)t, px->has_mtime = 1;
    } else if (klen > 12 && memcmp(key, "SCHILY.xattr.", 13) == 0) {
      if (px->nxattrs == MAX_XATTRS) die(EXIT_REFUSED, "more than %d xattrs on one entry", MAX_XATTRS);
      struct xattr *x = &px->xattrs[px->nxattrs++];
      x->name = dup_bytes(key + 13, klen - 13);
      x->value = dup_bytes(val, vlen);
      x->len = vlen;
    } else if (klen > 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
      die(EXIT_REFUSED, "sparse files are not supported in image layers");
    }
#undef KEY
    off += len;
  }
}

static void free_entry(struct entry *e) {
  free(e->name);
  free(e->link);
  for (int i = 0; i < e->nxattrs; i++) free(e->xattrs[i].name), free(e->xattrs[i].value);
  memset(e, 0, sizeof *e);
}

/* Reads the next real entry (folding PAX and GNU long-name records into it). 0 at end of archive. */
static int next_entry(struct entry *e) {
  unsigned char h[BLOCK];
  struct pax px;
  char *longname = NULL, *longlink = NULL;
  memset(&px, 0, sizeof px);
  for (;;) {
    current_entry = NULL;
    if (!read_exact(h, BLOCK)) return 0;
    if (all_zero(h)) return 0;
    check_checksum(h);
    char type = (char)h[156];
    uint64_t size = parse_number(h + 124, 12, "size");
    if (type == 'x') {
      char *buf = read_meta(size, "PAX");
      parse_pax(buf, size, &px);
      free(buf);
      continue;
    }
    if (type == 'g') { /* global PAX defaults: nothing in them may change how entries land */
      skip_bytes(padded(size));
      continue;
    }
    if (type == 'L' || type == 'K') {
      char *buf = read_meta(size, "GNU long name");
      if (type == 'L') free(longname), longname = buf;
      else free(longlink), longlink = buf;
      continue;
    }
    memset(e, 0, sizeof *e);
    e->type = type == 0 ? '0' : type;
    if (px.path) e->name = px.path;
    else if (longname) e->name = longname, longname = NULL;
    else {
      char *name = field_string(h, 100);
      if (memcmp(h + 257, "ustar", 5) == 0 && h[345]) {
        char *prefix = field_string(h + 345, 155);
        char *full = malloc(strlen(prefix) + strlen(name) + 2);
        if (!full) out_of_memory("tar header field");
        sprintf(full, "%s/%s", prefix, name);
        free(prefix), free(name);
        name = full;
      }
      e->name = name;
    }
    if (px.linkpath) e->link = px.linkpath;
    else if (longlink) e->link = longlink, longlink = NULL;
    else e->link = field_string(h + 157, 100);
    free(longname), free(longlink);
    e->size = px.has_size ? px.size : size;
    e->mode = (mode_t)(parse_number(h + 100, 8, "mode") & 07777);
    uint64_t uid = px.has_uid ? px.uid : parse_number(h + 108, 8, "uid");
    uint64_t gid = px.has_gid ? px.gid : parse_number(h + 116, 8, "gid");
    /* a cast would wrap 2^32 to uid 0 */
    if (uid >= UINT32_MAX || gid >= UINT32_MAX) die(EXIT_REFUSED, "uid or gid out of range");
    e->uid = (uid_t)uid, e->gid = (gid_t)gid;
    e->mtime = px.has_mtime ? px.mtime : (int64_t)parse_number(h + 136, 12, "mtime");
    e->dev = makedev((unsigned)parse_number(h + 329, 8, "devmajor"), (unsigned)parse_number(h + 337, 8, "devminor"));
    memcpy(e->xattrs, px.xattrs, sizeof px.xattrs);
    e->nxattrs = px.nxattrs;
    current_entry = e->name;
    if (type == 'S') die(EXIT_REFUSED, "sparse files are not supported in image layers");
    return 1;
  }
}

/* ---------- paths ---------- */

/* Normalises NAME in place to "a/b/c" (no leading "./", no empty or "." components). Refuses
 * absolute names and any ".." component outright: a layer never needs them. Returns "" for root. */
static char *clean_name(char *name, const char *what) {
  if (name[0] == '/') die(EXIT_REFUSED, "%s is an absolute path", what);
  char *out = name, *w = name, *p = name;
  while (*p) {
    char *start = p;
    while (*p && *p != '/') p++;
    size_t len = (size_t)(p - start);
    if (*p) p++;
    if (len == 0 || (len == 1 && start[0] == '.')) continue;
    if (len == 2 && start[0] == '.' && start[1] == '.') die(EXIT_REFUSED, "%s contains \"..\" and would escape the layer root", what);
    if (w != out) *w++ = '/';
    memmove(w, start, len);
    w += len;
  }
  *w = 0;
  if (strlen(out) >= PATH_MAX) die(EXIT_REFUSED, "%s is longer than PATH_MAX", what);
  return out;
}

static int rootfd;

static long do_openat2(int dirfd, const char *path, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd;
  do fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  return fd;
}

static void refuse_resolution(const char *dir, int err) {
  if (err == ELOOP) die(EXIT_REFUSED, "a parent directory (\"%s\") is or goes through a symlink; refusing to follow it", dir);
  if (err == ENOTDIR) die(EXIT_REFUSED, "a parent (\"%s\") is not a directory", dir);
  if (err == EXDEV) die(EXIT_REFUSED, "path \"%s\" crosses a mount point or leaves the layer root", dir);
  die(EXIT_SYSTEM, "open directory \"%s\": %s", dir, strerror(err));
}

/* One-slot cache: tar entries arrive grouped by directory. The rule that keeps it safe: a
 * directory fd returned by open_dir stays open until the next open_dir call, which alone closes
 * it, because the entry being applied uses it as the parent of every change it makes, also after a
 * removal beneath it. A removal only makes the cache forget the path (the cached directory may have
 * been the one removed, or under it), so no later lookup reuses that fd. */
static char cached_dir[PATH_MAX];
static int cached_fd = -1;

static void forget_cached_dir(void) { cached_dir[0] = 0; }

/* Lower layers (top first), read only to give implicitly created parents their real attributes. */
#define MAX_LOWERS 512
static int lowerfds[MAX_LOWERS];
static int nlowers;

static void record_dir_time(const char *path, int64_t mtime);

/* A layer that writes a/b/f without an entry for a/ must not change a/ in the merged view: a parent
 * created here takes owner, mode and mtime from the nearest lower layer that has it as a directory
 * (a whiteout or a non-directory there hides the layers below, so the defaults stay). */
static void inherit_from_lower(int fd, const char *path) {
  for (int i = 0; i < nlowers; i++) {
    long lfd = do_openat2(lowerfds[i], path, O_PATH);
    if (lfd < 0) {
      if (errno == ENOENT) continue;
      return;
    }
    struct stat st;
    int ok = fstat((int)lfd, &st) == 0;
    close((int)lfd);
    if (!ok || !S_ISDIR(st.st_mode)) return;
    if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0)
      die(EXIT_SYSTEM, "copy attributes of parent \"%s\": %s", path, strerror(errno));
    record_dir_time(path, st.st_mtim.tv_sec);
    return;
  }
}

/* Opens directory DIR (relative, cleaned; "" = root) beneath the root without following any
 * symlink. Missing components are created (0755) when CREATE, else -1/ENOENT is returned. */
static int open_dir(const char *dir, int create) {
  if (!dir[0]) return rootfd;
  if (cached_dir[0] && strcmp(dir, cached_dir) == 0) return cached_fd;
  long fd = do_openat2(rootfd, dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0 && errno == ENOENT && create) {
    char part[PATH_MAX];
    int cur = rootfd;
    const char *p = dir;
    while (*p) {
      const char *start = p;
      while (*p && *p != '/') p++;
      size_t len = (size_t)(p - start);
      memcpy(part, start, len);
      part[len] = 0;
      size_t prefix_len = (size_t)(p - dir);
      if (*p) p++;
      long next = do_openat2(cur, part, O_RDONLY | O_DIRECTORY);
      int created = 0;
      if (next < 0 && errno == ENOENT) {
        if (mkdirat(cur, part, 0755) < 0 && errno != EEXIST) die(EXIT_SYSTEM, "create directory \"%s\": %s", dir, strerror(errno));
        created = 1;
        next = do_openat2(cur, part, O_RDONLY | O_DIRECTORY);
      }
      if (next < 0) refuse_resolution(dir, errno);
      if (created && nlowers > 0) {
        char prefix[PATH_MAX];
        memcpy(prefix, dir, prefix_len);
        prefix[prefix_len] = 0;
        inherit_from_lower((int)next, prefix);
      }
      if (cur != rootfd) close(cur);
      cur = (int)next;
    }
    fd = cur;
  } else if (fd < 0 && errno == ENOENT) {
    return -1;
  } else if (fd < 0) {
    refuse_resolution(dir, errno);
  }
  if (cached_fd >= 0) close(cached_fd);
  snprintf(cached_dir, sizeof cached_dir, "%s", dir);
  cached_fd = (int)fd;
  return cached_fd;
}

static void split(char *path, char **dir, char **base) {
  char *slash = strrchr(path, '/');
  if (slash) {
    *slash = 0;
    *dir = path;
    *base = slash + 1;
  } else {
    *dir = "";
    *base = path;
  }
}

/* Removes NAME in DIRFD, recursively if it is a directory, never following symlinks; closes only
 * the fds it opens itself. 1 if a directory went. */
static int remove_subtree(int dirfd, const char *name) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return 0;
    die(EXIT_SYSTEM, "stat \"%s\": %s", name, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name, 0) < 0) die(EXIT_SYSTEM, "remove \"%s\": %s", name, strerror(errno));
    return 0;
  }
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die(EXIT_SYSTEM, "open \"%s\": %s", name, strerror(errno));
  DIR *d = fdopendir(fd);
  if (!d && errno == ENOMEM) out_of_memory("directory listing");
  if (!d) die(EXIT_SYSTEM, "read directory \"%s\": %s", name, strerror(errno));
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    remove_subtree(fd, de->d_name);
  }
  closedir(d);
  if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) die(EXIT_SYSTEM, "remove \"%s\": %s", name, strerror(errno));
  return 1;
}

static void remove_tree(int dirfd, const char *name) {
  if (remove_subtree(dirfd, name)) forget_cached_dir();
}

/* ---------- set of paths written by this layer (opaque dirs, whiteouts of same-layer paths) ---------- */

/* The set holds a 128-bit SipHash-2-4 of each path under a key drawn at start, not the path: 16
 * bytes an entry whatever the names' length. No path is kept to tell a collision from a match, and
 * none is needed: the key is random per run and no hash ever leaves the process, so a layer cannot
 * aim at one, and by chance one occurs with probability about n^2 / 2^129 (n paths). Even then the
 * false "written by this layer" answer could only keep a lower-layer file visible that a whiteout
 * or opaque marker meant to hide; it never makes the unpacker write anywhere. */
struct path_hash {
  uint64_t lo, hi;
};

struct siphash {
  uint64_t v0, v1, v2, v3, tail;
  size_t len;
};

static uint64_t sip_key[2];

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static inline void sip_rounds(struct siphash *s, int n) {
  while (n-- > 0) {
    s->v0 += s->v1, s->v1 = ROTL(s->v1, 13), s->v1 ^= s->v0, s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3, s->v3 = ROTL(s->v3, 16), s->v3 ^= s->v2;
    s->v0 += s->v3, s->v3 = ROTL(s->v3, 21), s->v3 ^= s->v0;
    s->v2 += s->v1, s->v1 = ROTL(s->v1, 17), s->v1 ^= s->v2, s->v2 = ROTL(s->v2, 32);
  }
}

static void sip_init(struct siphash *s) {
  s->v0 = sip_key[0] ^ 0x736f6d6570736575ULL;
  s->v1 = sip_key[1] ^ 0x646f72616e646f6dULL ^ 0xee; /* 0xee: the 128-bit output variant */
  s->v2 = sip_key[0] ^ 0x6c7967656e657261ULL;
  s->v3 = sip_key[1] ^ 0x7465646279746573ULL;
  s->tail = 0;
  s->len = 0;
}

static void sip_block(struct siphash *s, uint64_t m) {
  s->v3 ^= m;
  sip_rounds(s, 2);
  s->v0 ^= m;
}

/* Streaming, so that a path's prefixes ("a", "a/b", ...) cost one pass over the path. */
static void sip_update(struct siphash *s, const void *data, size_t n) {
  const unsigned char *p = data;
  while (n > 0 && (s->len & 7)) {
    s->tail |= (uint64_t)*p++ << (8 * (s->len++ & 7));
    n--;
    if (!(s->len & 7)) sip_block(s, s->tail), s->tail = 0;
  }
  for (; n >= 8; n -= 8, p += 8, s->len += 8) {
    uint64_t m;
    memcpy(&m, p, 8); /* little-endian host (x86-64, arm64) */
    sip_block(s, m);
  }
  while (n-- > 0) s->tail |= (uint64_t)*p++ << (8 * (s->len++ & 7));
}

/* The hash of what was fed so far; S itself stays usable for more input. */
static struct path_hash sip_final(const struct siphash *state) {
  struct siphash copy = *state, *s = &copy;
  sip_block(s, s->tail | ((uint64_t)s->len << 56));
  s->v2 ^= 0xee;
  sip_rounds(s, 4);
  struct path_hash h = {.lo = s->v0 ^ s->v1 ^ s->v2 ^ s->v3};
  s->v1 ^= 0xdd;
  sip_rounds(s, 4);
  h.hi = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
  if (!h.lo && !h.hi) h.lo = 1; /* all-zero marks an empty slot */
  return h;
}

static struct path_hash hash_path(const char *path) {
  struct siphash s;
  sip_init(&s);
  sip_update(&s, path, strlen(path));
  return sip_final(&s);
}

static struct path_hash *seen;
static size_t seen_cap, seen_len;

static int seen_has(struct path_hash h) {
  if (!seen_cap) return 0;
  for (size_t i = h.lo & (seen_cap - 1);; i = (i + 1) & (seen_cap - 1)) {
    if (!seen[i].lo && !seen[i].hi) return 0;
    if (seen[i].lo == h.lo && seen[i].hi == h.hi) return 1;
  }
}

static void seen_add(struct path_hash h) {
  if (seen_has(h)) return;
  if ((seen_len + 1) * 2 > seen_cap) {
    size_t ncap = seen_cap ? seen_cap * 2 : 1024;
    struct path_hash *n = calloc(ncap, sizeof *n);
    if (!n) out_of_memory("set of paths written by the layer");
    for (size_t j = 0; j < seen_cap; j++) {
      if (!seen[j].lo && !seen[j].hi) continue;
      size_t i = seen[j].lo & (ncap - 1);
      while (n[i].lo || n[i].hi) i = (i + 1) & (ncap - 1);
      n[i] = seen[j];
    }
    free(seen);
    seen = n, seen_cap = ncap;
  }
  size_t i = h.lo & (seen_cap - 1);
  while (seen[i].lo || seen[i].hi) i = (i + 1) & (seen_cap - 1);
  seen[i] = h;
  seen_len++;
}

/* ---------- applying entries ---------- */

static int overlay_mode;
static uint64_t max_bytes = UINT64_MAX, data_bytes, max_entries = UINT64_MAX;
static uint64_t n_entries, n_files, n_devices_skipped, n_whiteouts, n_opaques, n_xattrs_skipped;

/* Directories whose mtime is set once the whole layer is written (writing a child changes it).
 * They are reopened by path, so their paths are kept: in one arena, and with their records at most
 * a quarter of the memory ceiling, so that what a layer makes the unpacker remember stays bounded
 * whatever its directories' names. */
#define DIR_TIMES_TOO_BIG "paths of directories whose mtimes are restored last, held to a quarter of it"
struct dir_time {
  size_t path; /* offset in dir_paths */
  int64_t mtime;
};
static struct dir_time *dir_times;
static size_t dir_times_len, dir_times_cap;
static char *dir_paths;
static size_t dir_paths_len, dir_paths_cap;

static void record_dir_time(const char *path, int64_t mtime) {
  size_t len = strlen(path) + 1;
  if ((dir_times_len + 1) * sizeof *dir_times + dir_paths_len + len > max_memory / 4) out_of_memory(DIR_TIMES_TOO_BIG);
  if (dir_times_len == dir_times_cap) {
    dir_times_cap = dir_times_cap ? dir_times_cap * 2 : 256;
    dir_times = realloc(dir_times, dir_times_cap * sizeof *dir_times);
    if (!dir_times) out_of_memory(DIR_TIMES_TOO_BIG);
  }
  if (dir_paths_len + len > dir_paths_cap) {
    size_t ncap = dir_paths_cap ? dir_paths_cap : 1 << 16;
    while (ncap < dir_paths_len + len) ncap *= 2;
    dir_paths = realloc(dir_paths, ncap);
    if (!dir_paths) out_of_memory(DIR_TIMES_TOO_BIG);
    dir_paths_cap = ncap;
  }
  memcpy(dir_paths + dir_paths_len, path, len);
  dir_times[dir_times_len++] = (struct dir_time){.path = dir_paths_len, .mtime = mtime};
  dir_paths_len += len;
}

static int keep_xattr(const char *name) {
  if (strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0)
    die(EXIT_REFUSED, "xattr %s is reserved for overlayfs and may not come from a layer", name);
  return strcmp(name, "security.capability") == 0 || strncmp(name, "user.", 5) == 0;
}

/* Ownership, then mode (chown clears setuid/setgid), xattrs, and for non-directories the mtime. */
static void set_metadata(int fd, const struct entry *e, int is_dir) {
  if (fchown(fd, e->uid, e->gid) < 0) die(EXIT_SYSTEM, "chown: %s", strerror(errno));
  if (fchmod(fd, e->mode) < 0) die(EXIT_SYSTEM, "chmod: %s", strerror(errno));
  for (int i = 0; i < e->nxattrs; i++) {
    if (!keep_xattr(e->xattrs[i].name)) {
      n_xattrs_skipped++;
      continue;
    }
    if (fsetxattr(fd, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len, 0) < 0)
      die(EXIT_SYSTEM, "set xattr %s: %s", e->xattrs[i].name, strerror(errno));
  }
  if (!is_dir) {
    struct timespec ts[2] = {{.tv_sec = e->mtime}, {.tv_sec = e->mtime}};
    if (futimens(fd, ts) < 0) die(EXIT_SYSTEM, "set mtime: %s", strerror(errno));
  }
}

static void set_link_metadata(int dirfd, const char *base, const struct entry *e) {
  if (fchownat(dirfd, base, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0) die(EXIT_SYSTEM, "chown: %s", strerror(errno));
  struct timespec ts[2] = {{.tv_sec = e->mtime}, {.tv_sec = e->mtime}};
  if (utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0) die(EXIT_SYSTEM, "set mtime: %s", strerror(errno));
}

/* Clears the way for a non-directory: whatever is at BASE goes (a later entry wins). */
static void clear_path(int dirfd, const char *base) {
  struct stat st;
  if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return;
    die(EXIT_SYSTEM, "stat: %s", strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    remove_tree(dirfd, base);
  } else if (unlinkat(dirfd, base, 0) < 0) {
    die(EXIT_SYSTEM, "remove existing file: %s", strerror(errno));
  }
}

static void write_data(int fd, uint64_t size) {
  while (size > 0) {
    size_t avail = fill();
    if (avail == 0) die(EXIT_REFUSED, "truncated tar archive (file data ends early)");
    size_t take = avail < size ? avail : (size_t)size;
    size_t done = 0;
    while (done < take) {
      ssize_t n = write(fd, inbuf + inpos + done, take - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die(EXIT_SYSTEM, "write file data: %s", strerror(errno));
      done += (size_t)n;
    }
    inpos += take;
    size -= take;
  }
}

static void apply_hardlink(int dirfd, const char *base, const char *full, struct entry *e) {
  char target[PATH_MAX];
  snprintf(target, sizeof target, "%s", e->link);
  char *t = clean_name(target, "hard link target");
  if (!t[0]) die(EXIT_REFUSED, "hard link to the layer root");
  if (strcmp(t, full) == 0) die(EXIT_REFUSED, "hard link to itself");
  char tcopy[PATH_MAX];
  snprintf(tcopy, sizeof tcopy, "%s", t);
  char *tdir, *tbase;
  split(tcopy, &tdir, &tbase);
  /* The target's parent is opened separately: the one-slot cache may hold the entry's parent. */
  long tfd = tdir[0] ? do_openat2(rootfd, tdir, O_RDONLY | O_DIRECTORY) : dup(rootfd);
  if (tfd < 0 && errno == ENOENT) die(EXIT_REFUSED, "hard link target \"%s\" does not exist in the layer", t);
  if (tfd < 0) refuse_resolution(tdir, errno);
  struct stat st;
  if (fstatat((int)tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) die(EXIT_REFUSED, "hard link target \"%s\" does not exist in the layer", t);
    die(EXIT_SYSTEM, "stat hard link target: %s", strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) die(EXIT_REFUSED, "hard link target \"%s\" is a directory", t);
  /* A hard link to a symlink is another name for it, kept verbatim like the symlink itself: no
   * target is followed here (RESOLVE_NO_SYMLINKS), and at run time it resolves in the container. */
  clear_path(dirfd, base);
  if (linkat((int)tfd, tbase, dirfd, base, 0) < 0) die(EXIT_SYSTEM, "create hard link: %s", strerror(errno));
  close((int)tfd);
}

static void apply_whiteout(char *dir, const char *target) {
  n_whiteouts++;
  if (overlay_mode) {
    int dirfd = open_dir(dir, 1);
    clear_path(dirfd, target);
    if (mknodat(dirfd, target, S_IFCHR | 0, makedev(0, 0)) < 0) die(EXIT_SYSTEM, "create whiteout: %s", strerror(errno));
  } else {
    int dirfd = open_dir(dir, 0);
    if (dirfd < 0) return; /* nothing below to hide */
    remove_tree(dirfd, target);
  }
}

static void apply_opaque(const char *dir) {
  n_opaques++;
  int dfd = open_dir(dir, 1);
  if (overlay_mode) {
    if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
      die(EXIT_SYSTEM, "mark directory opaque (trusted.overlay.opaque): %s", strerror(errno));
    return;
  }
  /* Hide every lower child: only what this layer has already written in DIR survives. */
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d && errno == ENOMEM) out_of_memory("directory listing");
  if (!d) die(EXIT_SYSTEM, "read directory: %s", strerror(errno));
  struct siphash dir_prefix;
  sip_init(&dir_prefix);
  sip_update(&dir_prefix, dir, strlen(dir));
  if (dir[0]) sip_update(&dir_prefix, "/", 1);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    struct siphash child = dir_prefix;
    sip_update(&child, de->d_name, strlen(de->d_name));
    if (!seen_has(sip_final(&child))) remove_tree(fd, de->d_name);
  }
  closedir(d);
}

static void apply_entry(struct entry *e) {
  char namebuf[PATH_MAX + 1];
  if (strlen(e->name) > PATH_MAX) die(EXIT_REFUSED, "name is longer than PATH_MAX");
  snprintf(namebuf, sizeof namebuf, "%s", e->name);
  char *name = clean_name(namebuf, "name");
  uint64_t data = (e->type == '0' || e->type == '7') ? e->size : 0;
  if (++n_entries > max_entries) die(EXIT_LIMIT, "the layer has more than %" PRIu64 " entries, the limit (free inodes)", max_entries);
  if (!name[0]) { /* the root itself: its attributes belong to the snapshot, not the layer */
    skip_bytes(padded(e->size));
    return;
  }
  char full[PATH_MAX + 1];
  snprintf(full, sizeof full, "%s", name);
  char *dir, *base;
  split(name, &dir, &base);

  if (strncmp(base, ".wh.", 4) == 0) {
    skip_bytes(padded(e->size));
    if (strcmp(base, ".wh..wh..opq") == 0) return apply_opaque(dir);
    const char *target = base + 4;
    if (!target[0] || strncmp(target, ".wh.", 4) == 0 || strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
      die(EXIT_REFUSED, "invalid whiteout \"%s\"", base);
    /* A whiteout hides lower layers only (image-spec layer.md): what this layer itself wrote at
     * that path stays. A file of this layer already hides the lower one; a directory of this
     * layer must stop showing the lower directory's children, which is what opaque does. */
    char hidden[PATH_MAX * 2];
    snprintf(hidden, sizeof hidden, "%s%s%s", dir, dir[0] ? "/" : "", target);
    if (seen_has(hash_path(hidden))) {
      n_whiteouts++;
      int dirfd = open_dir(dir, 0);
      struct stat st;
      if (dirfd >= 0 && fstatat(dirfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) apply_opaque(hidden);
      return;
    }
    return apply_whiteout(dir, target);
  }

  { /* implicit parents count as written by this layer too */
    struct siphash prefix;
    sip_init(&prefix);
    const char *from = full;
    for (const char *slash = strchr(full, '/'); slash; from = slash, slash = strchr(slash + 1, '/')) {
      sip_update(&prefix, from, (size_t)(slash - from));
      seen_add(sip_final(&prefix));
    }
    sip_update(&prefix, from, strlen(from));
    seen_add(sip_final(&prefix));
  }
  int dirfd = open_dir(dir, 1);
  switch (e->type) {
  case '0':
  case '7': {
    if (data > max_bytes - data_bytes)
      die(EXIT_LIMIT, "file data of the layer exceeds the limit of %" PRIu64 " bytes (declared size %" PRIu64 " bytes after %" PRIu64 ")", max_bytes, data, data_bytes);
    data_bytes += data;
    clear_path(dirfd, base);
    int fd = openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) die(EXIT_SYSTEM, "create file: %s", strerror(errno));
    write_data(fd, data);
    skip_bytes(padded(data) - data);
    set_metadata(fd, e, 0);
    if (close(fd) < 0) die(EXIT_SYSTEM, "close file: %s", strerror(errno));
    n_files++;
    return;
  }
  case '5': {
    struct stat st;
    if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
      clear_path(dirfd, base);
    }
    if (mkdirat(dirfd, base, 0700) < 0 && errno != EEXIST) die(EXIT_SYSTEM, "create directory: %s", strerror(errno));
    int fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die(EXIT_SYSTEM, "open directory: %s", strerror(errno));
    set_metadata(fd, e, 1);
    close(fd);
    record_dir_time(full, e->mtime);
    break;
  }
  case '2':
    if (!e->link[0]) die(EXIT_REFUSED, "symlink with an empty target");
    clear_path(dirfd, base);
    if (symlinkat(e->link, dirfd, base) < 0) die(EXIT_SYSTEM, "create symlink: %s", strerror(errno));
    set_link_metadata(dirfd, base, e);
    break;
  case '1':
    apply_hardlink(dirfd, base, full, e);
    break;
  case '6':
    clear_path(dirfd, base);
    if (mknodat(dirfd, base, S_IFIFO | 0600, 0) < 0) die(EXIT_SYSTEM, "create fifo: %s", strerror(errno));
    {
      int fd = openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) die(EXIT_SYSTEM, "open fifo: %s", strerror(errno));
      char proc[64];
      snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
      if (fchownat(dirfd, base, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 || chmod(proc, e->mode) < 0)
        die(EXIT_SYSTEM, "set fifo metadata: %s", strerror(errno));
      close(fd);
      set_link_metadata(dirfd, base, e);
    }
    break;
  case '3':
  case '4':
    n_devices_skipped++;
    break;
  default:
    die(EXIT_REFUSED, "unsupported tar entry type '%c'", e->type);
  }
  skip_bytes(padded(e->size));
}

static void restore_dir_times(void) {
  for (size_t i = 0; i < dir_times_len; i++) {
    long fd = do_openat2(rootfd, dir_paths + dir_times[i].path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) continue; /* removed again later in this layer */
    struct timespec ts[2] = {{.tv_sec = dir_times[i].mtime}, {.tv_sec = dir_times[i].mtime}};
    if (futimens((int)fd, ts) < 0) die(EXIT_SYSTEM, "set directory mtime: %s", strerror(errno));
    close((int)fd);
  }
}

#define USAGE                                                                                            \
  "usage: skiff-unpack --root DIR --whiteouts overlay|apply [--max-bytes N] [--max-entries N] [--max-memory BYTES] " \
  "[--lower DIR]... < layer.tar\n"                                                                        \
  "       skiff-unpack --overlay-markers DIR\n"
#define MIN_MAX_MEMORY (16ULL << 20)
#define STACK_RESERVE (1 << 20)

/* The ceiling covers the whole address space, the stack included: grown later, past the ceiling,
 * the stack could only fail as a SIGSEGV, so it is grown now, beyond the deepest recursion (a
 * removal nests one small frame per directory level, at most PATH_MAX / 2 of them from a layer). */
static void __attribute__((noinline)) reserve_stack(void) {
  volatile char pad[STACK_RESERVE];
  for (size_t i = 0; i < sizeof pad; i += 4096) pad[i] = 0;
}

static void set_memory_ceiling(void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) < 0) die(EXIT_SYSTEM, "read the memory limit (RLIMIT_AS): %s", strerror(errno));
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < max_memory) max_memory = lim.rlim_max;
  lim.rlim_cur = lim.rlim_max = max_memory;
  /* lowering a limit needs no privilege (no CAP_SYS_RESOURCE) */
  if (setrlimit(RLIMIT_AS, &lim) < 0) die(EXIT_SYSTEM, "set the memory ceiling (RLIMIT_AS): %s", strerror(errno));
  reserve_stack();
}

/* ---------- --overlay-markers: what Node cannot read of an overlay upper dir (xattrs) ---------- */

/* Walks DIR without following anything (O_NOFOLLOW, fd-relative) and prints, NUL-terminated, "O<path>"
 * for each directory marked opaque (trusted.overlay.opaque=y: `rm -rf d && mkdir d` in a container) and
 * "R<path>" for each entry carrying a redirect or metacopy xattr (an upper dir whose diff is not the
 * plain changeset; the build refuses it). Paths are relative to DIR. The image builder
 * (build/upper-diff.ts) turns the rest of the upper dir into a layer from Node's own lstat. */
static char marker_path[PATH_MAX];

static void marker_walk(int dfd, size_t len) {
  char value[8];
  ssize_t n = fgetxattr(dfd, "trusted.overlay.opaque", value, sizeof value);
  if (n == 1 && value[0] == 'y' && len > 0) printf("O%s%c", marker_path, 0);
  if ((fgetxattr(dfd, "trusted.overlay.redirect", NULL, 0) >= 0 || fgetxattr(dfd, "trusted.overlay.metacopy", NULL, 0) >= 0) && len > 0)
    printf("R%s%c", marker_path, 0);
  int copy = dup(dfd);
  if (copy < 0) die(EXIT_SYSTEM, "dup: %s", strerror(errno));
  DIR *d = fdopendir(copy);
  if (!d) die(EXIT_SYSTEM, "read directory %s: %s", len ? marker_path : ".", strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t add = strlen(e->d_name) + (len ? 1 : 0);
    if (len + add + 1 >= sizeof marker_path) die(EXIT_SYSTEM, "path too long under %s", marker_path);
    if (len) marker_path[len] = '/';
    memcpy(marker_path + len + (len ? 1 : 0), e->d_name, strlen(e->d_name) + 1);
    struct stat st;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) die(EXIT_SYSTEM, "stat %s: %s", marker_path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
      int child = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) die(EXIT_SYSTEM, "open %s: %s", marker_path, strerror(errno));
      marker_walk(child, len + add);
      close(child);
    } else if (S_ISREG(st.st_mode)) {
      int fd = openat(dfd, e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      char proc[64];
      snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
      if (fd >= 0 && (getxattr(proc, "trusted.overlay.metacopy", NULL, 0) >= 0 || getxattr(proc, "trusted.overlay.redirect", NULL, 0) >= 0))
        printf("R%s%c", marker_path, 0);
      if (fd >= 0) close(fd);
    }
    marker_path[len] = 0;
  }
  closedir(d);
}

static int overlay_markers(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die(EXIT_SYSTEM, "open %s: %s", dir, strerror(errno));
  marker_path[0] = 0;
  marker_walk(fd, 0);
  if (fflush(stdout) != 0) die(EXIT_SYSTEM, "write: %s", strerror(errno));
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--overlay-markers") == 0) return overlay_markers(argv[2]);
  const char *root = NULL, *whiteouts = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) root = argv[++i];
    else if (strcmp(argv[i], "--whiteouts") == 0 && i + 1 < argc) whiteouts = argv[++i];
    else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc) max_bytes = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--max-entries") == 0 && i + 1 < argc) max_entries = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--max-memory") == 0 && i + 1 < argc) {
      char *end;
      errno = 0;
      max_memory = strtoull(argv[++i], &end, 10);
      if (errno || *end || max_memory < MIN_MAX_MEMORY) {
        fprintf(stderr, "skiff-unpack: --max-memory must be a number of bytes, at least %llu MiB\n", MIN_MAX_MEMORY >> 20);
        return EXIT_SYSTEM;
      }
    } else if (strcmp(argv[i], "--lower") == 0 && i + 1 < argc) {
      if (nlowers == MAX_LOWERS) die(EXIT_SYSTEM, "more than %d --lower directories", MAX_LOWERS);
      const char *lower = argv[++i];
      lowerfds[nlowers] = open(lower, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (lowerfds[nlowers] < 0) die(EXIT_SYSTEM, "open lower layer %s: %s", lower, strerror(errno));
      nlowers++;
    } else {
      fputs(USAGE, stderr);
      return EXIT_SYSTEM;
    }
  }
  if (!root || !whiteouts || (strcmp(whiteouts, "overlay") && strcmp(whiteouts, "apply"))) {
    fputs(USAGE, stderr);
    return EXIT_SYSTEM;
  }
  set_memory_ceiling();
  if (getrandom(sip_key, sizeof sip_key, 0) != sizeof sip_key) die(EXIT_SYSTEM, "getrandom: %s", strerror(errno));
  overlay_mode = strcmp(whiteouts, "overlay") == 0;
  umask(0);
  rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0) die(EXIT_SYSTEM, "open layer root %s: %s", root, strerror(errno));
  /* fewer, larger reads from Node's pipe; best effort (capped by /proc/sys/fs/pipe-max-size) */
  (void)fcntl(0, F_SETPIPE_SZ, IOBUF);
  inbuf = malloc(IOBUF);
  if (!inbuf) out_of_memory("input buffer");

  struct entry e;
  memset(&e, 0, sizeof e);
  while (next_entry(&e)) {
    apply_entry(&e);
    free_entry(&e);
  }
  current_entry = NULL;
  restore_dir_times();
  /* Drain what follows the end-of-archive blocks so the writer never sees EPIPE. */
  while (fill()) inpos = inlen;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) < 0) die(EXIT_SYSTEM, "getrusage: %s", strerror(errno));
  printf("{\"entries\":%" PRIu64 ",\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"devicesSkipped\":%" PRIu64
         ",\"whiteouts\":%" PRIu64 ",\"opaques\":%" PRIu64 ",\"xattrsSkipped\":%" PRIu64 ",\"peakRssBytes\":%" PRIu64 "}\n",
         n_entries, n_files, data_bytes, n_devices_skipped, n_whiteouts, n_opaques, n_xattrs_skipped,
         (uint64_t)ru.ru_maxrss * 1024);
  return 0;
}
