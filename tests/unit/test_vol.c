/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vol: the Secret-volume atomic writer and its reader, on real folders.
 * The crash tests kill a real publishing child (at every numbered step, then
 * with SIGKILL at random moments) and check that the folder always holds one
 * complete set: three files that share a letter ("B-key", "B-crt", "B-ca").
 */
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "duet/clock.h"
#include "duet/err.h"
#include "duet/vol.h"
#include "testlib.h"

static const char *const names[] = {DUET_VOL_KEY, DUET_VOL_CERT, DUET_VOL_CA};

struct letter_set {
    char key[8], crt[8], ca[8];
    struct duet_vol_file files[3];
};

static void make_set(struct letter_set *s, char letter, gid_t gid)
{
    snprintf(s->key, sizeof(s->key), "%c-key", letter);
    snprintf(s->crt, sizeof(s->crt), "%c-crt", letter);
    snprintf(s->ca, sizeof(s->ca), "%c-ca", letter);
    s->files[0] = (struct duet_vol_file){DUET_VOL_KEY, s->key, strlen(s->key),
                                         gid == (gid_t)-1 ? 0600 : 0640};
    s->files[1] = (struct duet_vol_file){DUET_VOL_CERT, s->crt, strlen(s->crt), 0644};
    s->files[2] = (struct duet_vol_file){DUET_VOL_CA, s->ca, strlen(s->ca), 0644};
}

static int publish_letter(const char *dir, char letter, struct duet_errbuf *eb)
{
    struct letter_set s;

    make_set(&s, letter, (gid_t)-1);
    return duet_vol_publish(dir, s.files, 3, NULL, eb);
}

static void publish_ok(const char *dir, char letter)
{
    struct duet_errbuf eb;

    duet_errbuf_clear(&eb);
    if (publish_letter(dir, letter, &eb) != 0)
        fail_msg("publish %c: %s", letter, eb.msg);
}

/* The letter of the one complete set in the blobs, or 0 if mixed or partial. */
static char set_letter(const struct duet_vol_blob *b)
{
    char want[3][8];
    char l = b[0].len > 0 ? b[0].data[0] : 0;

    snprintf(want[0], sizeof(want[0]), "%c-key", l);
    snprintf(want[1], sizeof(want[1]), "%c-crt", l);
    snprintf(want[2], sizeof(want[2]), "%c-ca", l);
    for (int i = 0; i < 3; i++)
        if (strcmp(b[i].data, want[i]) != 0)
            return 0;
    return l;
}

/* The letter of the one complete set duet_vol_read finds; 0 for no set at all. */
static char read_letter(const char *dir)
{
    struct duet_vol_set set;
    struct duet_errbuf eb;
    char l;
    int rc;

    duet_errbuf_clear(&eb);
    rc = duet_vol_read(dir, names, 3, 4096, &set, &eb);
    if (rc == DUET_ENOENT)
        return 0;
    if (rc != 0)
        fail_msg("read: %s", eb.msg);
    l = set_letter(set.blobs);
    if (!l)
        fail_msg("mixed set: %s %s %s", set.blobs[0].data, set.blobs[1].data, set.blobs[2].data);
    duet_vol_set_clear(&set);
    return l;
}

/*
 * The folder holds exactly one complete set: duet_vol_read and the
 * top-level symlinks agree on it. Returns its letter.
 */
static char consistent_letter(const char *dir)
{
    struct duet_vol_blob direct[3];
    char path[512], l = read_letter(dir);

    if (!l)
        fail_msg("%s: no set", dir);
    for (int i = 0; i < 3; i++) {
        direct[i].data =
            tl_read_file(tl_path(path, sizeof(path), "%s/%s", dir, names[i]), &direct[i].len);
        assert_non_null(direct[i].data);
    }
    assert_int_equal(set_letter(direct), l);
    for (int i = 0; i < 3; i++)
        free(direct[i].data);
    return l;
}

/* ".."-entries besides ..data: 1 after a clean publish (the current version). */
static int count_hidden(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "..", 2) == 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, DUET_VOL_DATA) != 0)
            n++;
    closedir(d);
    return n;
}

static void read_link(const char *dir, const char *name, char *buf, size_t size)
{
    char path[512];
    ssize_t n = readlink(tl_path(path, sizeof(path), "%s/%s", dir, name), buf, size - 1);

    assert_true(n > 0);
    buf[n] = '\0';
}

static void vol_publish__creates_secret_volume_layout(void **state)
{
    char top[256], dir[300], ver[256], link[256], path[600];
    regex_t re;
    struct stat st;

    tl_tmpdir(top, sizeof(top));
    tl_path(dir, sizeof(dir), "%s/dev/productA", top); /* parents are missing */
    publish_ok(dir, 'A');
    read_link(dir, DUET_VOL_DATA, ver, sizeof(ver));
    assert_int_equal(
        regcomp(&re, "^\\.\\.[0-9]{4}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}\\.[0-9]{9}$",
                REG_EXTENDED | REG_NOSUB),
        0);
    assert_int_equal(regexec(&re, ver, 0, NULL, 0), 0);
    regfree(&re);
    for (int i = 0; i < 3; i++) {
        char want[64];

        read_link(dir, names[i], link, sizeof(link));
        snprintf(want, sizeof(want), "..data/%s", names[i]);
        assert_string_equal(link, want);
    }
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/%s/tls.key", dir, ver), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/%s/tls.crt", dir, ver), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(consistent_letter(dir), 'A');
    assert_int_equal(count_hidden(dir), 1);
    tl_rmrf(top);
}

static void vol_publish__applies_group_and_mode_as_root(void **state)
{
    char dir[256], ver[256], path[600];
    struct duet_vol_opts opts = {.gid = 65532, .dir_mode = 0750};
    struct letter_set s;
    struct duet_errbuf eb;
    struct stat st;

    if (geteuid() != 0)
        skip(); /* chown to a foreign group needs root */
    tl_tmpdir(dir, sizeof(dir));
    make_set(&s, 'G', opts.gid);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_vol_publish(dir, s.files, 3, &opts, &eb), 0);
    read_link(dir, DUET_VOL_DATA, ver, sizeof(ver));
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/%s/tls.key", dir, ver), &st), 0);
    assert_int_equal(st.st_gid, 65532);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/%s", dir, ver), &st), 0);
    assert_int_equal(st.st_gid, 65532);
    assert_int_equal(st.st_mode & 07777, 0750);
    tl_rmrf(dir);
}

static void vol_publish__republish_replaces_and_removes_old_version(void **state)
{
    char dir[256], v1[256], v2[256], path[600];
    struct stat st;

    tl_tmpdir(dir, sizeof(dir));
    publish_ok(dir, 'A');
    read_link(dir, DUET_VOL_DATA, v1, sizeof(v1));
    publish_ok(dir, 'B');
    read_link(dir, DUET_VOL_DATA, v2, sizeof(v2));
    assert_string_not_equal(v1, v2);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/%s", dir, v1), &st), -1);
    assert_int_equal(consistent_letter(dir), 'B');
    assert_int_equal(count_hidden(dir), 1);
    /* Back-to-back publishes (same nanosecond is possible) each get their own folder. */
    for (int i = 0; i < 20; i++)
        publish_ok(dir, (char)('a' + i));
    assert_int_equal(consistent_letter(dir), 't');
    assert_int_equal(count_hidden(dir), 1);
    tl_rmrf(dir);
}

static void vol_publish__removes_stale_names_keeps_user_files(void **state)
{
    char dir[256], path[600];
    struct duet_vol_file f[2] = {{"tls.key", "k", 1, 0600}, {"extra.pem", "e", 1, 0644}};
    struct duet_errbuf eb;
    struct stat st;

    tl_tmpdir(dir, sizeof(dir));
    tl_write_file(tl_path(path, sizeof(path), "%s/notes.txt", dir), "mine", 4, 0644);
    assert_int_equal(duet_vol_publish(dir, f, 2, NULL, &eb), 0);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/extra.pem", dir), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(duet_vol_publish(dir, f, 1, NULL, &eb), 0);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/extra.pem", dir), &st), -1);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/tls.key", dir), &st), 0);
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/notes.txt", dir), &st), 0);
    assert_int_equal(count_hidden(dir), 1);
    tl_rmrf(dir);
}

static void vol_publish__refuses_bad_names(void **state)
{
    static const char *const bad[] = {"a/b", "..x", "..data", "", ".", "/abs"};
    char dir[256];
    struct duet_errbuf eb;

    tl_tmpdir(dir, sizeof(dir));
    for (size_t i = 0; i < DUET_ARRAY_SIZE(bad); i++) {
        struct duet_vol_file f[2] = {{"tls.key", "k", 1, 0600}, {bad[i], "x", 1, 0644}};

        duet_errbuf_clear(&eb);
        assert_int_equal(duet_vol_publish(dir, f, 2, NULL, &eb), DUET_EINVAL);
        assert_non_null(strstr(eb.msg, "refusing file name"));
    }
    struct duet_vol_file dup[2] = {{"a", "1", 1, 0600}, {"a", "2", 1, 0600}};
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_vol_publish(dir, dup, 2, NULL, &eb), DUET_EINVAL);
    assert_non_null(strstr(eb.msg, "given twice"));
    assert_int_equal(duet_vol_publish(dir, dup, 0, NULL, &eb), DUET_EINVAL);
    assert_int_equal(count_hidden(dir), 0); /* nothing was written */
    tl_rmrf(dir);
}

static void vol_read__plain_folder_missing_file_and_size_cap(void **state)
{
    char dir[256], path[600];
    struct duet_vol_set set;
    struct duet_errbuf eb;
    const char *const want[] = {"tls.key", "nope.crt"};

    tl_tmpdir(dir, sizeof(dir));
    tl_write_file(tl_path(path, sizeof(path), "%s/tls.key", dir), "P-key", 5, 0600);
    tl_write_file(tl_path(path, sizeof(path), "%s/tls.crt", dir), "P-crt", 5, 0644);
    tl_write_file(tl_path(path, sizeof(path), "%s/ca.crt", dir), "P-ca", 4, 0644);
    assert_int_equal(duet_vol_read(dir, names, 3, 4096, &set, &eb), 0);
    assert_string_equal(set.version, "");
    assert_int_equal(set.n, 3);
    assert_int_equal(set_letter(set.blobs), 'P');
    assert_int_equal(set.blobs[3 - 1].len, 4);
    duet_vol_set_clear(&set);

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_vol_read(dir, want, 2, 4096, &set, &eb), DUET_ENOENT);
    assert_non_null(strstr(eb.msg, "nope.crt"));
    assert_null(set.blobs[0].data); /* nothing half-returned */

    duet_errbuf_clear(&eb);
    assert_int_equal(duet_vol_read(dir, names, 3, 4, &set, &eb), DUET_E_TOOBIG);
    assert_non_null(strstr(eb.msg, "tls.key"));

    publish_ok(dir, 'Q'); /* a plain folder becomes a published one */
    assert_int_equal(consistent_letter(dir), 'Q');
    assert_int_equal(duet_vol_read(dir, want, 2, 4096, &set, &eb), DUET_ENOENT);
    assert_int_equal(duet_vol_read(dir, (const char *const[]){"../x"}, 1, 64, &set, &eb),
                     DUET_EINVAL);
    tl_rmrf(dir);
}

static int die_at;

static int die_hook(int step, void *arg)
{
    if (step == die_at)
        _exit(0);
    return 0;
}

/* Fork a child that publishes `letter` over dir and dies at step n. Returns true if it died. */
static bool child_dies_at(const char *dir, char letter, int n)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        die_at = n;
        duet_vol_set_fault_hook(die_hook, NULL);
        _exit(publish_letter(dir, letter, NULL) == 0 ? 3 : 4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 4);
    return WEXITSTATUS(status) == 0;
}

static void vol_publish__crash_at_every_step_leaves_one_set(void **state)
{
    char dir[256];
    bool saw_old = false, saw_new = false;
    int n;

    tl_tmpdir(dir, sizeof(dir));
    publish_ok(dir, 'A');
    for (n = 1; n < 1000; n++) {
        char l;

        if (!child_dies_at(dir, 'B', n))
            break;
        l = consistent_letter(dir);
        assert_true(l == 'A' || l == 'B');
        saw_old |= l == 'A';
        saw_new |= l == 'B';
        /* Whatever the crash left, the next publish succeeds and sweeps it. */
        publish_ok(dir, 'C');
        assert_int_equal(consistent_letter(dir), 'C');
        assert_int_equal(count_hidden(dir), 1);
        publish_ok(dir, 'A');
    }
    print_message("crash test: %d fault points\n", n - 1);
    assert_true(n > 15 && n < 1000);
    assert_true(saw_old && saw_new);
    assert_int_equal(consistent_letter(dir), 'B'); /* the run that did not die */
    tl_rmrf(dir);
}

/*
 * The first publish into an empty folder also creates the top-level links:
 * a crash anywhere leaves no set or the whole new set behind ..data.
 */
static void vol_publish__crash_during_first_publish_leaves_none_or_new(void **state)
{
    char dir[256];
    int n;

    tl_tmpdir(dir, sizeof(dir));
    for (n = 1; n < 1000; n++) {
        char l;

        if (!child_dies_at(dir, 'B', n))
            break;
        l = read_letter(dir);
        assert_true(l == 0 || l == 'B');
        publish_ok(dir, 'C');
        assert_int_equal(consistent_letter(dir), 'C');
        assert_int_equal(count_hidden(dir), 1);
        tl_rmrf(dir);
        assert_int_equal(mkdir(dir, 0700), 0);
    }
    assert_true(n > 20 && n < 1000);
    assert_int_equal(consistent_letter(dir), 'B');
    tl_rmrf(dir);
}

static void vol_publish__second_writer_gets_eagain(void **state)
{
    char dir[256], sub[300];
    struct duet_errbuf eb;
    int fd;

    tl_tmpdir(dir, sizeof(dir));
    publish_ok(tl_path(sub, sizeof(sub), "%s/v/", dir), 'A'); /* trailing slash is fine */
    fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0); /* another writer, mid-publish */
    duet_errbuf_clear(&eb);
    assert_int_equal(publish_letter(sub, 'B', &eb), DUET_EAGAIN);
    assert_non_null(strstr(eb.msg, "another process is publishing"));
    close(fd);
    publish_ok(sub, 'B');
    assert_int_equal(consistent_letter(sub), 'B');
    assert_int_equal(count_hidden(sub), 1);
    tl_rmrf(dir);
}

static int stop_hook(int step, void *arg)
{
    return step == *(int *)arg;
}

/* A hook that returns non-zero stops the publish on the spot, leaving its debris. */
static void vol_set_fault_hook__stops_publish_without_cleanup(void **state)
{
    char dir[256];
    int at = 8; /* inside the version folder's files */

    tl_tmpdir(dir, sizeof(dir));
    publish_ok(dir, 'A');
    duet_vol_set_fault_hook(stop_hook, &at);
    assert_int_equal(publish_letter(dir, 'B', NULL), -ECANCELED);
    duet_vol_set_fault_hook(NULL, NULL);
    assert_int_equal(count_hidden(dir), 2); /* A's folder and B's half-written one */
    assert_int_equal(consistent_letter(dir), 'A');
    publish_ok(dir, 'C');
    assert_int_equal(count_hidden(dir), 1);
    assert_int_equal(consistent_letter(dir), 'C');
    tl_rmrf(dir);
}

/* A child that publishes forever, cycling letters, until killed. */
static pid_t start_writer(const char *dir)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        for (unsigned i = 0;; i++)
            if (publish_letter(dir, (char)('B' + i % 24), NULL) != 0)
                _exit(4);
    }
    return pid;
}

static void stop_writer(pid_t pid)
{
    int status;

    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status)); /* it never failed on its own */
}

/* Microseconds one publish takes here and now (fsync latency follows the disk's load). */
static unsigned publish_us(const char *dir)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 3; i++)
        publish_ok(dir, 'A');
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (unsigned)(((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000) / 3);
}

static void vol_publish__sigkill_at_random_moments_leaves_one_set(void **state)
{
    char dir[256];
    int64_t deadline = duet_clock_mono_ms() + 8000;
    unsigned seed = (unsigned)time(NULL), span;
    int kills = 0, switched = 0;
    char last = 'A';

    tl_tmpdir(dir, sizeof(dir));
    /* Kill within about three publishes of the start: before, during and between them. */
    span = DUET_MIN(3 * publish_us(dir) + 1000, 50000u); /* and still ~200 kills in 8 s */
    print_message("sigkill test: seed %u, kill within %u us\n", seed, span);
    srand(seed);
    while (kills < 200 && duet_clock_mono_ms() < deadline) {
        pid_t pid = start_writer(dir);
        char l;

        usleep((useconds_t)((unsigned)rand() % span));
        stop_writer(pid);
        kills++;
        l = consistent_letter(dir);
        switched += l != last;
        last = l;
    }
    print_message("sigkill test: %d kills, %d of them after a completed switch\n", kills, switched);
    assert_true(kills >= 20);
    publish_ok(dir, 'Z');
    assert_int_equal(consistent_letter(dir), 'Z');
    assert_int_equal(count_hidden(dir), 1);
    tl_rmrf(dir);
}

static void vol_read__concurrent_writer_never_mixes_sets(void **state)
{
    char dir[256];
    int64_t deadline = duet_clock_mono_ms() + 3000;
    int reads = 0, versions = 0;
    char last[256] = "";
    pid_t pid;

    tl_tmpdir(dir, sizeof(dir));
    publish_ok(dir, 'A');
    pid = start_writer(dir);
    while (reads < 20000 && duet_clock_mono_ms() < deadline) {
        struct duet_vol_set set;
        struct duet_errbuf eb;

        duet_errbuf_clear(&eb);
        if (duet_vol_read(dir, names, 3, 4096, &set, &eb) != 0)
            fail_msg("read %d: %s", reads, eb.msg);
        if (!set_letter(set.blobs))
            fail_msg("mixed set: %s %s %s", set.blobs[0].data, set.blobs[1].data,
                     set.blobs[2].data);
        if (strcmp(last, set.version) != 0) {
            versions++;
            snprintf(last, sizeof(last), "%s", set.version);
        }
        duet_vol_set_clear(&set);
        reads++;
    }
    stop_writer(pid);
    print_message("concurrent read: %d reads saw %d versions\n", reads, versions);
    assert_true(versions > 2); /* the writer really raced the reader */
    tl_rmrf(dir);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Median of up to 200 publishes (bounded to about 3 s: fsync latency depends on the disk's load).
 */
static void vol_publish__latency(void **state)
{
    enum { N = 200 };
    static int64_t us[N];
    int64_t end = duet_clock_mono_ms() + 3000;
    char dir[256];
    int n = 0;

    tl_tmpdir(dir, sizeof(dir));
    while (n < N && (n < 10 || duet_clock_mono_ms() < end)) {
        struct timespec a, b;

        clock_gettime(CLOCK_MONOTONIC, &a);
        publish_ok(dir, (char)('A' + n % 26));
        clock_gettime(CLOCK_MONOTONIC, &b);
        us[n++] = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
    }
    qsort(us, (size_t)n, sizeof(us[0]), cmp_i64);
    print_message("publish latency (3 files, fsync), %d publishes: median %lld us, p90 %lld us, "
                  "max %lld us\n",
                  n, (long long)us[n / 2], (long long)us[n * 9 / 10], (long long)us[n - 1]);
    tl_rmrf(dir);
}

static int publish_below(const char *root, const char *dir, char letter, struct duet_errbuf *eb)
{
    struct letter_set s;
    const struct duet_vol_opts o = {.gid = (gid_t)-1, .root = root};

    make_set(&s, letter, (gid_t)-1);
    duet_errbuf_clear(eb);
    return duet_vol_publish(dir, s.files, 3, &o, eb);
}

static void vol_publish__below_root_refuses_symlinks_and_foreign_folders(void **state)
{
    char base[256], root[300], victim[256], dir[400], path[400], out[256];
    struct duet_errbuf eb;
    struct stat st;

    tl_tmpdir(victim, sizeof(victim));
    tl_tmpdir(base, sizeof(base));
    tl_path(root, sizeof(root), "%s/out", base); /* created by the first publish */
    assert_int_equal(
        publish_below(root, tl_path(dir, sizeof(dir), "%s/dev/productA", root), 'A', &eb), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    /* The report: a symlink pre-placed at <output_dir>/dev/productB. */
    tl_write_file(tl_path(path, sizeof(path), "%s/..precious", victim), "x", 1, 0644);
    assert_int_equal(symlink(victim, tl_path(path, sizeof(path), "%s/dev/productB", root)), 0);
    assert_int_equal(publish_below(root, path, 'B', &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "/dev/productB: a symlink"));
    assert_null(tl_read_file(tl_path(out, sizeof(out), "%s/tls.key", victim), NULL));
    assert_non_null(
        strstr(tl_sh(out, sizeof(out), "ls -a %s", victim) == 0 ? out : "", "..precious"));
    /* A symlink higher up. */
    assert_int_equal(symlink(victim, tl_path(path, sizeof(path), "%s/stage", root)), 0);
    assert_int_equal(publish_below(root, tl_path(path, sizeof(path), "%s/stage/p", root), 'C', &eb),
                     DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "/stage: a symlink"));
    assert_int_equal(lstat(tl_path(out, sizeof(out), "%s/p", victim), &st), -1);
    /* A folder others may write to. */
    assert_int_equal(mkdir(tl_path(path, sizeof(path), "%s/dev/productD", root), 0700), 0);
    assert_int_equal(chmod(path, 0777), 0);
    assert_int_equal(publish_below(root, path, 'D', &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "/dev/productD: mode 0777"));
    /* A folder someone else owns (only root can make one). */
    if (geteuid() == 0) {
        assert_int_equal(mkdir(tl_path(path, sizeof(path), "%s/dev/productE", root), 0755), 0);
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_int_equal(publish_below(root, path, 'E', &eb), DUET_E_VOL_UNSAFE);
        assert_non_null(strstr(eb.msg, "owned by uid 65534"));
    }
    /* Paths outside the root or with ".." are refused. */
    assert_int_equal(publish_below(root, victim, 'F', &eb), DUET_EINVAL);
    assert_int_equal(
        publish_below(root, tl_path(path, sizeof(path), "%s/dev/../x", root), 'F', &eb),
        DUET_EINVAL);
    /* The good identity still republishes. */
    assert_int_equal(publish_below(root, dir, 'G', &eb), 0);
    assert_int_equal(consistent_letter(dir), 'G');
    tl_rmrf(victim);
    tl_rmrf(base);
}

static void vol_inspect__reports_mode_owner_and_symlinks(void **state)
{
    char root[256], dir[400], path[400];
    struct letter_set s;
    const struct duet_vol_opts o = {.gid = (gid_t)-1, .root = root};
    struct duet_errbuf eb;

    tl_tmpdir(root, sizeof(root));
    tl_path(dir, sizeof(dir), "%s/dev/p", root);
    make_set(&s, 'A', (gid_t)-1);
    duet_errbuf_clear(&eb);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), -ENOENT);
    assert_int_equal(publish_below(root, dir, 'A', &eb), 0);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), 0);
    /* The report: chmod 0644 on the published key. */
    assert_int_equal(chmod(tl_path(path, sizeof(path), "%s/tls.key", dir), 0644), 0);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "tls.key: mode 0644, want 0600"));
    /* The version folder opened up. */
    assert_int_equal(publish_below(root, dir, 'B', &eb), 0);
    assert_int_equal(chmod(tl_path(path, sizeof(path), "%s/..data/", dir), 0777), 0);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "mode 0777, want 0755"));
    /* A file replaced by a symlink. */
    assert_int_equal(publish_below(root, dir, 'C', &eb), 0);
    assert_int_equal(unlink(tl_path(path, sizeof(path), "%s/..data/tls.crt", dir)), 0);
    assert_int_equal(symlink("/etc/hostname", path), 0);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "tls.crt"));
    /* ..data pointing out of the folder. */
    assert_int_equal(publish_below(root, dir, 'D', &eb), 0);
    assert_int_equal(unlink(tl_path(path, sizeof(path), "%s/..data", dir)), 0);
    assert_int_equal(symlink("/etc", path), 0);
    assert_int_equal(duet_vol_inspect(dir, s.files, 3, &o, &eb), DUET_E_VOL_UNSAFE);
    assert_non_null(strstr(eb.msg, "..data: not a link to a version folder"));
    tl_rmrf(root);
}

static void vol_remove__wipes_then_unlinks(void **state)
{
    char base[256], root[300], dir[400], path[400], victim[300], buf[16];
    const struct duet_vol_opts o = {.gid = (gid_t)-1, .root = root};
    struct duet_errbuf eb;
    struct stat st;
    int fd;

    tl_tmpdir(base, sizeof(base));
    tl_path(root, sizeof(root), "%s/out", base);
    tl_path(dir, sizeof(dir), "%s/dev/gone", root);
    assert_int_equal(publish_below(root, dir, 'A', &eb), 0);
    /* A reader that still has the key open sees zeros after the removal. */
    fd = open(tl_path(path, sizeof(path), "%s/tls.key", dir), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(duet_vol_remove(dir, &o, &eb), 0);
    assert_int_equal(pread(fd, buf, 5, 0), 5);
    assert_memory_equal(buf, "\0\0\0\0\0", 5);
    close(fd);
    assert_int_equal(lstat(dir, &st), -1);
    assert_int_equal(stat(tl_path(path, sizeof(path), "%s/dev", root), &st), 0);
    /* A user's own file keeps the folder (the set goes). */
    assert_int_equal(publish_below(root, dir, 'B', &eb), 0);
    tl_write_file(tl_path(path, sizeof(path), "%s/notes.txt", dir), "n", 1, 0644);
    assert_int_equal(duet_vol_remove(dir, &o, &eb), -ENOTEMPTY);
    assert_non_null(strstr(eb.msg, "folder kept"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/..data", dir), &st), -1);
    assert_int_equal(lstat(tl_path(path, sizeof(path), "%s/tls.key", dir), &st), -1);
    /* Not a set: left alone. A symlink: refused, its target untouched. */
    assert_int_equal(duet_vol_remove(dir, &o, &eb), DUET_E_VOL_LAYOUT);
    tl_path(victim, sizeof(victim), "%s/victim", base);
    assert_int_equal(publish_below(base, victim, 'C', &eb), 0);
    assert_int_equal(symlink(victim, tl_path(path, sizeof(path), "%s/dev/link", root)), 0);
    assert_int_equal(duet_vol_remove(path, &o, &eb), DUET_E_VOL_UNSAFE);
    assert_int_equal(consistent_letter(victim), 'C');
    tl_rmrf(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vol_publish__creates_secret_volume_layout),
        cmocka_unit_test(vol_publish__applies_group_and_mode_as_root),
        cmocka_unit_test(vol_publish__republish_replaces_and_removes_old_version),
        cmocka_unit_test(vol_publish__removes_stale_names_keeps_user_files),
        cmocka_unit_test(vol_publish__refuses_bad_names),
        cmocka_unit_test(vol_read__plain_folder_missing_file_and_size_cap),
        cmocka_unit_test(vol_publish__crash_at_every_step_leaves_one_set),
        cmocka_unit_test(vol_publish__crash_during_first_publish_leaves_none_or_new),
        cmocka_unit_test(vol_set_fault_hook__stops_publish_without_cleanup),
        cmocka_unit_test(vol_publish__second_writer_gets_eagain),
        cmocka_unit_test(vol_publish__sigkill_at_random_moments_leaves_one_set),
        cmocka_unit_test(vol_read__concurrent_writer_never_mixes_sets),
        cmocka_unit_test(vol_publish__latency),
        cmocka_unit_test(vol_publish__below_root_refuses_symlinks_and_foreign_folders),
        cmocka_unit_test(vol_inspect__reports_mode_owner_and_symlinks),
        cmocka_unit_test(vol_remove__wipes_then_unlinks),
    };

    return cmocka_run_group_tests_name("vol", tests, NULL, NULL);
}
