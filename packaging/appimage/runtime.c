/*
 * callapp's AppImage runtime: the ELF at the head of callapp-*.AppImage.
 *
 * An AppImage (type 2) is this program with a squashfs image appended at the
 * end of its ELF file; bytes 8-10 of the ELF header read "AI\2" (build.py
 * writes them). The runtime that appimagetool embeds is downloaded from
 * GitHub, which this project's machines cannot reach, so this one is built
 * from Debian's static libsquashfuse, libsquashfuse_ll and libfuse3 instead.
 *
 * Behaviour, as the AppImage specification and the reference runtime have it:
 *   (no option)                   mount the image with FUSE on a temporary
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
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>
#include <ftw.h>

#include <fuse3/fuse_lowlevel.h>

#ifndef CALLAPP_RUNTIME_VERSION
#define CALLAPP_RUNTIME_VERSION "1"
#endif

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

static int mount_image(long offset, struct mounted *m) {
    if (!fuse_available()) return -1;
    m->ll = sqfs_ll_open(self_path, (size_t)offset);
    if (!m->ll) return -1;
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

    struct mounted m;
    if (mount_image(offset, &m) != 0) {
        fprintf(stderr,
                "callapp AppImage: cannot mount with FUSE (install fuse3 to start faster);"
                " extracting to %s instead\n",
                temp_dir());
        return extract_and_run(offset, argc, argv);
    }
    int code;
    if (strcmp(option, "--appimage-mount") == 0) {
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
