/*
 * callapp's AppImage runtime: the ELF at the head of callapp-*.AppImage.
 *
 * An AppImage (type 2) is this program with a squashfs image appended at the
 * end of its ELF file; bytes 8-10 of the ELF header read "AI\2" (build.py
 * writes them). The runtime that appimagetool embeds is downloaded from
 * GitHub, which this project's machines cannot reach, so this one is built
 * from Debian's static libsquashfuse, libsquashfuse_ll and libfuse3 instead.
 *
 * Behaviour, as the AppImage specification and the reference runtime have it,
 * but for the first row (see "The extract-once cache" below):
 *   (no option)                   run AppRun from the image's copy in the
 *                                 user's cache, $XDG_CACHE_HOME/callapp/
 *                                 appimage/<version>-<digest>, unpacking it
 *                                 there first if it is not there yet; where
 *                                 that cannot be done (no home, disk full,
 *                                 --appimage-no-cache or
 *                                 CALLAPP_APPIMAGE_CACHE=0), mount as below
 *   --appimage-no-cache           mount the image with FUSE on a temporary
 *                                 directory, run its AppRun, unmount when it
 *                                 exits; with no usable FUSE (no /dev/fuse, no
 *                                 fusermount3, a container) say so and
 *                                 extract-and-run instead, so that a double
 *                                 click still opens the app
 *   --appimage-extract-and-run    (or APPIMAGE_EXTRACT_AND_RUN=1) extract to
 *                                 $TMPDIR, run AppRun, delete the copy
 *                                 (kept when NO_CLEANUP=1)
 *   --appimage-extract [PATH]     write the image to ./squashfs-root
 *   --appimage-offset             print where the squashfs image starts
 *   --appimage-mount              mount, print the mount point, wait
 *   --appimage-help, --appimage-version
 * AppRun gets APPIMAGE (this file), APPDIR (the tree), ARGV0 and OWD.
 *
 * Built statically (glibc, libfuse3, squashfuse and its decompressors), so
 * that it runs on a system with none of them installed.
 *
 * The extract-once cache. A FUSE mount is new at every start, so everything
 * Python and Qt open at start-up (110 MB of libraries, through 4500 FUSE
 * requests on one thread, each 128 KiB read decompressing a whole 1 MiB
 * block) is read and decompressed again: 2.2 s to the window against 0.9 s
 * for the unpacked folder. Unpacked once into the user's cache, the image
 * starts as fast as the folder. The cache entry is named by the SHA-256 of
 * the image, which appimage.py writes into this file (image_digest below);
 * the image is hashed and compared before it is unpacked, the copy is made
 * in a temporary folder and renamed into place with a marker holding the
 * digest, and at every start each of the image's entries is checked against
 * the copy (type, size, owner) before AppRun is run from it. Another
 * version's entry is removed when a new one is made, unless it was started
 * within the last day (it may still be running).
 */

#define _GNU_SOURCE
/* squashfuse's config.h sets _POSIX_C_SOURCE; first, so that the system
 * headers settle the feature macros once. */
#include <squashfuse.h>
#include <ll.h>
#include <traverse.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>
#include <ftw.h>

#include <fuse3/fuse_lowlevel.h>

#ifndef CALLAPP_RUNTIME_VERSION
#define CALLAPP_RUNTIME_VERSION "2"
#endif
#ifndef CALLAPP_APP_VERSION
#define CALLAPP_APP_VERSION "0"
#endif

/* The image's SHA-256 in hex: appimage.py finds this prefix in the runtime
 * and writes the digest over the zeros (all zeros: no cache). Volatile, so
 * that the compiler reads what is in the file, not the zeros it was built
 * with. */
#define DIGEST_PREFIX "CALLAPP-IMAGE-SHA256:"
__attribute__((used)) static volatile char image_digest[] =
    DIGEST_PREFIX "0000000000000000000000000000000000000000000000000000000000000000";
/* An entry not started for this long may be removed when another is made. */
#define STALE_SECONDS (24 * 3600)
#define MARKER ".callapp-appimage"

static char self_path[PATH_MAX];

static int fail(const char *what) {
    fprintf(stderr, "callapp AppImage: %s: %s\n", what, strerror(errno));
    return 127;
}

/* The squashfs image starts where the ELF file ends: after the section
 * header table, which strip and the linker put last. */
static long elf_size(const char *path) {
    Elf64_Ehdr header;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t got = read(fd, &header, sizeof header);
    close(fd);
    if (got != (ssize_t)sizeof header || memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_ident[EI_CLASS] != ELFCLASS64)
        return -1;
    return (long)(header.e_shoff + (Elf64_Off)header.e_shentsize * header.e_shnum);
}

static int write_file(sqfs *fs, sqfs_inode *inode, const char *target) {
    int out = open(target, O_WRONLY | O_CREAT | O_TRUNC, inode->base.mode & 07777);
    if (out < 0) return -1;
    static char buffer[1 << 20];
    sqfs_off_t position = 0, size = (sqfs_off_t)inode->xtra.reg.file_size;
    while (position < size) {
        sqfs_off_t chunk = size - position < (sqfs_off_t)sizeof buffer
                               ? size - position
                               : (sqfs_off_t)sizeof buffer;
        if (sqfs_read_range(fs, inode, position, &chunk, buffer) != SQFS_OK || chunk <= 0) {
            close(out);
            errno = EIO;
            return -1;
        }
        if (write(out, buffer, (size_t)chunk) != (ssize_t)chunk) {
            close(out);
            return -1;
        }
        position += chunk;
    }
    return close(out);
}

/* Every file, directory and symlink of the image, under `root`. */
static int extract(const char *image, long offset, const char *root) {
    sqfs fs;
    if (sqfs_open_image(&fs, image, (size_t)offset) != SQFS_OK) {
        fprintf(stderr, "callapp AppImage: no squashfs image at offset %ld of %s\n", offset, image);
        return -1;
    }
    if (mkdir(root, 0755) != 0 && errno != EEXIST) return fail(root), -1;
    sqfs_traverse trv;
    if (sqfs_traverse_open(&trv, &fs, sqfs_inode_root(&fs)) != SQFS_OK) return -1;
    sqfs_err err = SQFS_OK;
    int status = 0;
    char target[PATH_MAX];
    while (status == 0 && sqfs_traverse_next(&trv, &err)) {
        if (trv.dir_end) continue;
        sqfs_inode inode;
        if (sqfs_inode_get(&fs, &inode, trv.entry.inode) != SQFS_OK) {
            status = -1;
            break;
        }
        if (snprintf(target, sizeof target, "%s/%s", root, trv.path) >= (int)sizeof target) {
            status = -1;
            break;
        }
        mode_t mode = inode.base.mode;
        if (S_ISDIR(mode)) {
            if (mkdir(target, (mode & 07777) | 0700) != 0 && errno != EEXIST) status = -1;
        } else if (S_ISREG(mode)) {
            status = write_file(&fs, &inode, target);
        } else if (S_ISLNK(mode)) {
            char link[PATH_MAX];
            size_t size = sizeof link;
            if (sqfs_readlink(&fs, &inode, link, &size) != SQFS_OK) status = -1;
            else {
                unlink(target);
                status = symlink(link, target);
            }
        }
        if (status != 0) fail(target);
    }
    sqfs_traverse_close(&trv);
    sqfs_destroy(&fs);
    return (status == 0 && err == SQFS_OK) ? 0 : -1;
}

static void set_environment(const char *appdir, const char *argv0) {
    char cwd[PATH_MAX];
    setenv("APPIMAGE", self_path, 1);
    setenv("APPDIR", appdir, 1);
    setenv("ARGV0", argv0, 1);
    if (getcwd(cwd, sizeof cwd)) setenv("OWD", cwd, 1);
}

/* Strip our own --appimage-* option so that AppRun never sees it. */
static char **app_arguments(int argc, char **argv, const char *apprun) {
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    args[n++] = (char *)apprun;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--appimage-", 11) != 0) args[n++] = argv[i];
    args[n] = NULL;
    return args;
}

static pid_t child_pid;

static void forward(int sig) {
    if (child_pid > 0) kill(child_pid, sig);
}

/* Run AppRun as a child (so that we can clean up after it) and return its
 * exit status the way a shell would. */
static int run_apprun(const char *appdir, int argc, char **argv) {
    char apprun[PATH_MAX];
    snprintf(apprun, sizeof apprun, "%s/AppRun", appdir);
    set_environment(appdir, argv[0]);
    char **args = app_arguments(argc, argv, apprun);
    child_pid = fork();
    if (child_pid < 0) return fail("fork");
    if (child_pid == 0) {
        execv(apprun, args);
        _exit(fail(apprun));
    }
    struct sigaction action = {0};
    action.sa_handler = forward;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    int status;
    while (waitpid(child_pid, &status, 0) < 0 && errno == EINTR) {
    }
    free(args);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static const char *temp_dir(void) {
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

static int extract_and_run(long offset, int argc, char **argv) {
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/appimage_extracted_callapp_XXXXXX", temp_dir());
    if (!mkdtemp(root)) return fail(root);
    if (extract(self_path, offset, root) != 0) {
        nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return 127;
    }
    int code = run_apprun(root, argc, argv);
    const char *keep = getenv("NO_CLEANUP");
    if (!(keep && strcmp(keep, "1") == 0)) nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return code;
}

/* ---- SHA-256 (FIPS 180-4), to check the image before it is cached ---- */

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t used;
} sha256_ctx;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_compress(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->bytes = 0;
    c->used = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n) {
    c->bytes += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->block + c->used, p, take);
        c->used += take, p += take, n -= take;
        if (c->used < 64) return;
        sha256_compress(c->h, c->block);
        c->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha256_compress(c->h, p);
    memcpy(c->block, p, n);
    c->used = n;
}

static void sha256_hex(sha256_ctx *c, char out[65]) {
    uint64_t bits = c->bytes * 8;
    unsigned char pad[72] = {0x80};
    size_t n = (c->used < 56 ? 56 : 120) - c->used;
    for (int i = 0; i < 8; i++) pad[n + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, pad, n + 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

/* ---- the extract-once cache ---- */

/* The digest appimage.py wrote into this runtime; 0 if there is none. */
static int embedded_digest(char out[65]) {
    int nonzero = 0;
    for (int i = 0; i < 64; i++) {
        char c = image_digest[sizeof DIGEST_PREFIX - 1 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
        nonzero |= c != '0';
        out[i] = c;
    }
    out[64] = '\0';
    return nonzero;
}

/* The SHA-256 of the image, from `offset` to the end of this file. */
static int image_sha256(long offset, char out[65]) {
    int fd = open(self_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    static unsigned char buffer[1 << 20];
    sha256_ctx ctx;
    sha256_init(&ctx);
    off_t at = offset;
    ssize_t got;
    while ((got = pread(fd, buffer, sizeof buffer, at)) > 0) {
        sha256_update(&ctx, buffer, (size_t)got);
        at += got;
    }
    close(fd);
    if (got < 0) return -1;
    sha256_hex(&ctx, out);
    return 0;
}

/* A folder of ours: a directory, owned by this user, writable by no one else. */
static int private_dir(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_mode & 022) == 0;
}

/* $XDG_CACHE_HOME/callapp/appimage (or ~/.cache/...), made if missing. */
static int cache_root(char *root, size_t size) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char base[PATH_MAX];
    if (xdg && xdg[0] == '/') snprintf(base, sizeof base, "%s", xdg);
    else if (home && home[0] == '/') snprintf(base, sizeof base, "%s/.cache", home);
    else return -1;
    if (mkdir(base, 0700) != 0 && errno != EEXIST) return -1;
    if ((size_t)snprintf(root, size, "%s/callapp", base) >= size) return -1;
    if (mkdir(root, 0700) != 0 && errno != EEXIST) return -1;
    strncat(root, "/appimage", size - strlen(root) - 1);
    if (mkdir(root, 0700) != 0 && errno != EEXIST) return -1;
    return private_dir(root) ? 0 : -1;
}

/* Does `entry` hold all of the image, made by this user, marked with `digest`? */
static int cached_copy_ok(const char *entry, const char *digest, long offset) {
    char path[PATH_MAX + 32], mark[80] = {0};
    if (!private_dir(entry)) return 0;
    snprintf(path, sizeof path, "%s/" MARKER, entry);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    ssize_t got = read(fd, mark, sizeof mark - 1);
    close(fd);
    if (got < 64 || memcmp(mark, digest, 64) != 0) return 0;
    sqfs fs;
    if (sqfs_open_image(&fs, self_path, (size_t)offset) != SQFS_OK) return 0;
    sqfs_traverse trv;
    if (sqfs_traverse_open(&trv, &fs, sqfs_inode_root(&fs)) != SQFS_OK) {
        sqfs_destroy(&fs);
        return 0;
    }
    sqfs_err err = SQFS_OK;
    int ok = 1;
    uid_t me = geteuid();
    while (ok && sqfs_traverse_next(&trv, &err)) {
        if (trv.dir_end) continue;
        sqfs_inode inode;
        struct stat st;
        if (sqfs_inode_get(&fs, &inode, trv.entry.inode) != SQFS_OK ||
            (size_t)snprintf(path, sizeof path, "%s/%s", entry, trv.path) >= sizeof path ||
            lstat(path, &st) != 0 || st.st_uid != me) {
            ok = 0;
            break;
        }
        mode_t mode = inode.base.mode;
        if (S_ISDIR(mode)) ok = S_ISDIR(st.st_mode);
        else if (S_ISREG(mode))
            ok = S_ISREG(st.st_mode) && (uint64_t)st.st_size == inode.xtra.reg.file_size;
        else if (S_ISLNK(mode))
            ok = S_ISLNK(st.st_mode) && (uint64_t)st.st_size == inode.xtra.symlink_size;
    }
    sqfs_traverse_close(&trv);
    sqfs_destroy(&fs);
    return ok && err == SQFS_OK;
}

static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Other versions' entries not started for a day, and unpacking left over by
 * a start that was killed midway. */
static void remove_stale(const char *root, const char *keep) {
    DIR *dir = opendir(root);
    if (!dir) return;
    time_t now = time(NULL);
    struct dirent *d;
    char path[PATH_MAX];
    while ((d = readdir(dir)) != NULL) {
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0 ||
            strcmp(d->d_name, keep) == 0)
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/" MARKER, root, d->d_name);
        int unpacking = strncmp(d->d_name, ".unpack-", 8) == 0;
        if (lstat(path, &st) != 0) {
            snprintf(path, sizeof path, "%s/%s", root, d->d_name);
            if (lstat(path, &st) != 0) continue;
        }
        if (now - st.st_mtime < (unpacking ? 3600 : STALE_SECONDS)) continue;
        snprintf(path, sizeof path, "%s/%s", root, d->d_name);
        remove_tree(path);
    }
    closedir(dir);
}

/* Unpack the image into `entry`, by way of a temporary folder beside it. */
static int fill_cache(const char *root, const char *entry, const char *digest, long offset) {
    char actual[65], tmp[PATH_MAX], path[PATH_MAX + 32];
    fprintf(stderr, "callapp AppImage: first start of this image: unpacking it to %s\n", entry);
    if (image_sha256(offset, actual) != 0 || strcmp(actual, digest) != 0) {
        fprintf(stderr, "callapp AppImage: the image does not match its SHA-256"
                        " (a damaged download?); not caching it\n");
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s/.unpack-XXXXXX", root);
    if (!mkdtemp(tmp)) return -1;
    int fd = -1;
    if (extract(self_path, offset, tmp) == 0) {
        snprintf(path, sizeof path, "%s/" MARKER, tmp);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    int ok = fd >= 0 && write(fd, digest, 64) == 64 && write(fd, "\n", 1) == 1;
    /* On disk before it is renamed into place: a crash never leaves an
     * entry with the marker but empty files. */
    ok = ok && syncfs(fd) == 0;
    if (fd >= 0) ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, entry) != 0) {
        /* Another start of the same image may have won the race. */
        ok = (errno == EEXIST || errno == ENOTEMPTY) && cached_copy_ok(entry, digest, offset);
        remove_tree(tmp);
        return ok ? 0 : -1;
    }
    if (!ok) {
        fprintf(stderr, "callapp AppImage: cannot unpack to %s: %s\n", tmp, strerror(errno));
        remove_tree(tmp);
        return -1;
    }
    return 0;
}

/* Run AppRun from the cached copy (made first if need be); returns only if
 * that cannot be done, for the caller to mount instead. */
static int run_cached(long offset, int argc, char **argv) {
    char digest[65], root[PATH_MAX], entry[PATH_MAX], name[128], path[PATH_MAX + 32];
    const char *setting = getenv("CALLAPP_APPIMAGE_CACHE");
    if (setting && strcmp(setting, "0") == 0) return -1;
    if (!embedded_digest(digest) || cache_root(root, sizeof root) != 0) return -1;
    snprintf(name, sizeof name, "%s-%.16s", CALLAPP_APP_VERSION, digest);
    if ((size_t)snprintf(entry, sizeof entry, "%s/%s", root, name) >= sizeof entry) return -1;
    if (!cached_copy_ok(entry, digest, offset)) {
        struct stat st;
        if (lstat(entry, &st) == 0) {
            fprintf(stderr, "callapp AppImage: %s is incomplete or altered; unpacking again\n",
                    entry);
            snprintf(path, sizeof path, "%s/.unpack-XXXXXX", root);
            if (!mkdtemp(path) || rename(entry, path) != 0) return -1;
            remove_tree(path);
        }
        if (fill_cache(root, entry, digest, offset) != 0) return -1;
        remove_stale(root, name);
    }
    snprintf(path, sizeof path, "%s/" MARKER, entry);
    utimensat(AT_FDCWD, path, NULL, 0); /* last started: see remove_stale */
    char apprun[PATH_MAX + 8];
    snprintf(apprun, sizeof apprun, "%s/AppRun", entry);
    set_environment(entry, argv[0]);
    execv(apprun, app_arguments(argc, argv, apprun));
    fail(apprun);
    return -1;
}

static struct fuse_lowlevel_ops operations = {
    .lookup = sqfs_ll_op_lookup,
    .forget = sqfs_ll_op_forget,
    .getattr = sqfs_ll_op_getattr,
    .readlink = sqfs_ll_op_readlink,
    .open = sqfs_ll_op_open,
    .read = sqfs_ll_op_read,
    .release = sqfs_ll_op_release,
    .opendir = sqfs_ll_op_opendir,
    .readdir = sqfs_ll_op_readdir,
    .releasedir = sqfs_ll_op_releasedir,
    .statfs = stfs_ll_op_statfs,
    .listxattr = sqfs_ll_op_listxattr,
    .getxattr = sqfs_ll_op_getxattr,
};

struct mounted {
    sqfs_ll *ll;
    struct fuse_session *session;
    pthread_t loop;
    char point[PATH_MAX];
};

static void *serve(void *arg) {
    fuse_session_loop(((struct mounted *)arg)->session);
    return NULL;
}

/* FUSE usable at all? Without /dev/fuse, or without fusermount3 for a user
 * other than root, mounting cannot work, and libfuse's own message would
 * come before ours. */
static int fuse_available(void) {
    if (access("/dev/fuse", R_OK | W_OK) != 0) return 0;
    if (geteuid() == 0) return 1; /* root mounts directly, without fusermount3 */
    const char *dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/fusermount3", dirs[i]);
        if (access(path, X_OK) == 0) return 1;
    }
    return 0;
}

/* squashfuse keeps one decompressed data block and three fragment blocks:
 * the kernel's 128 KiB reads of the libraries Python maps at start-up jump
 * between files, so each 1 MiB block was decompressed four times over (383
 * MB decompressed for 111 MB read). A few more, reused round-robin. */
#define CACHED_DATA_BLOCKS 32
#define CACHED_FRAGMENT_BLOCKS 16
static void widen_caches(sqfs *fs) {
    sqfs_cache data = fs->data_cache, frag = fs->frag_cache;
    if (sqfs_block_cache_init(&fs->data_cache, CACHED_DATA_BLOCKS) == SQFS_OK)
        sqfs_cache_destroy(&data);
    else
        fs->data_cache = data;
    if (sqfs_block_cache_init(&fs->frag_cache, CACHED_FRAGMENT_BLOCKS) == SQFS_OK)
        sqfs_cache_destroy(&frag);
    else
        fs->frag_cache = frag;
}

static int mount_image(long offset, struct mounted *m) {
    if (!fuse_available()) return -1;
    m->ll = sqfs_ll_open(self_path, (size_t)offset);
    if (!m->ll) return -1;
    widen_caches(&m->ll->fs);
    snprintf(m->point, sizeof m->point, "%s/.mount_callapXXXXXX", temp_dir());
    if (!mkdtemp(m->point)) return -1;
    char *fuse_argv[] = {"callapp", "-o", "ro", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
    m->session = fuse_session_new(&args, &operations, sizeof operations, m->ll);
    if (!m->session || fuse_session_mount(m->session, m->point) != 0) {
        rmdir(m->point);
        return -1;
    }
    if (pthread_create(&m->loop, NULL, serve, m) != 0) return -1;
    return 0;
}

static void unmount_image(struct mounted *m) {
    fuse_session_exit(m->session);
    /* Unmounting makes the loop's pending read return, so it can end. */
    fuse_session_unmount(m->session);
    pthread_join(m->loop, NULL);
    fuse_session_destroy(m->session);
    rmdir(m->point);
}

static int usage(void) {
    printf("callapp AppImage runtime %s\n\n"
           "  --appimage-extract [PATH]   extract the image to ./squashfs-root\n"
           "  --appimage-extract-and-run  extract to a temporary folder and run\n"
           "                              (also APPIMAGE_EXTRACT_AND_RUN=1)\n"
           "  --appimage-mount            mount, print the mount point, wait\n"
           "  --appimage-no-cache         run from a FUSE mount, not the unpacked copy in\n"
           "                              $XDG_CACHE_HOME/callapp/appimage (also\n"
           "                              CALLAPP_APPIMAGE_CACHE=0)\n"
           "  --appimage-offset           where the squashfs image starts\n"
           "  --appimage-version          this runtime's version\n"
           "Any other argument goes to callapp.\n",
           CALLAPP_RUNTIME_VERSION);
    return 0;
}

int main(int argc, char **argv) {
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n < 0) return fail("/proc/self/exe");
    self_path[n] = '\0';
    long offset = elf_size(self_path);
    if (offset <= 0) {
        fprintf(stderr, "callapp AppImage: %s is not a 64-bit ELF file\n", self_path);
        return 127;
    }
    const char *option = argc > 1 ? argv[1] : "";
    if (strcmp(option, "--appimage-offset") == 0) {
        printf("%ld\n", offset);
        return 0;
    }
    if (strcmp(option, "--appimage-help") == 0) return usage();
    if (strcmp(option, "--appimage-version") == 0) {
        printf("%s\n", CALLAPP_RUNTIME_VERSION);
        return 0;
    }
    if (strcmp(option, "--appimage-extract") == 0) {
        /* The reference runtime takes a pattern of paths to extract; callapp
         * is one application, so the whole image is written, whatever PATH. */
        return extract(self_path, offset, "squashfs-root") == 0 ? 0 : 1;
    }
    const char *env = getenv("APPIMAGE_EXTRACT_AND_RUN");
    if (strcmp(option, "--appimage-extract-and-run") == 0 || (env && strcmp(env, "1") == 0))
        return extract_and_run(offset, argc, argv);
    int mount_only = strcmp(option, "--appimage-mount") == 0;
    if (!mount_only && strcmp(option, "--appimage-no-cache") != 0)
        run_cached(offset, argc, argv); /* returns only if the cache cannot be used */

    struct mounted m;
    if (mount_image(offset, &m) != 0) {
        fprintf(stderr,
                "callapp AppImage: cannot mount with FUSE (install fuse3 to start faster);"
                " extracting to %s instead\n",
                temp_dir());
        return extract_and_run(offset, argc, argv);
    }
    int code;
    if (mount_only) {
        printf("%s\n", m.point);
        fflush(stdout);
        sigset_t wait_for;
        sigemptyset(&wait_for);
        sigaddset(&wait_for, SIGINT);
        sigaddset(&wait_for, SIGTERM);
        sigprocmask(SIG_BLOCK, &wait_for, NULL);
        int sig;
        sigwait(&wait_for, &sig);
        code = 0;
    } else {
        code = run_apprun(m.point, argc, argv);
    }
    unmount_image(&m);
    return code;
}
