/* A container's main process that writes down, with wall-clock timestamps,
 * what happens to its container while the pod terminates:
 *   <epoch seconds> start
 *   <epoch seconds> proc <pid> ppid=<p> pgid=<g> sid=<s> <command line>
 *                     a process appeared in the container, or exec'd another
 *                     program (a preStop hook and the commands it runs)
 *   <epoch seconds> signal USR1|USR2|TERM|INT|HUP
 *   <epoch seconds> exit <code>
 * It exits 0 right after SIGTERM (or SIGINT): the container's stop time is
 * the time SIGTERM arrived. Polls /proc every 5 ms; reaps orphans (it is the
 * container's PID 1). Built with `gcc -static` by tests/node/images.py. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXPID 65536
static char *seen[MAXPID];
static volatile sig_atomic_t pending[65];

static void note(int signo) { pending[signo] = 1; }

static void say(const char *fmt, const char *a, long n) {
    /* fmt takes n (long) first, then a (string) */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%lld.%06ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    printf(fmt, n, a);
    putchar('\n');
    fflush(stdout);
}

static void scan(void) {
    static char present[MAXPID];
    memset(present, 0, sizeof present);
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    pid_t self = getpid();
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid >= MAXPID || pid == self)
            continue;
        present[pid] = 1;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue; /* a zombie, or not yet exec'd */
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == 0)
                buf[i] = ' ';
        while (n > 0 && buf[n - 1] == ' ')
            n--;
        buf[n] = 0;
        if (seen[pid] && strcmp(seen[pid], buf) == 0)
            continue;
        free(seen[pid]);
        seen[pid] = strdup(buf);
        /* ppid, process group and session from /proc/PID/stat */
        char stat[512], line[1024];
        long ppid = -1, pgid = -1, sid = -1;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t m = read(fd, stat, sizeof stat - 1);
            close(fd);
            if (m > 0) {
                stat[m] = 0;
                char *close_paren = strrchr(stat, ')');
                if (close_paren)
                    sscanf(close_paren + 1, " %*c %ld %ld %ld", &ppid, &pgid, &sid);
            }
        }
        snprintf(line, sizeof line, "ppid=%ld pgid=%ld sid=%ld %s", ppid, pgid, sid, buf);
        say("proc %ld %s", line, pid);
    }
    closedir(d);
    for (long pid = 1; pid < MAXPID; pid++)
        if (seen[pid] && !present[pid]) {
            free(seen[pid]);
            seen[pid] = NULL;
        }
}

int main(void) {
    static const struct { int no; const char *name; } sigs[] = {
        {SIGTERM, "TERM"}, {SIGINT, "INT"}, {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGHUP, "HUP"}};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i].no, &sa, NULL);
    say("start%.0ld%s", "", 0);
    for (;;) {
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            if (pending[sigs[i].no]) {
                pending[sigs[i].no] = 0;
                say("signal %.0ld%s", sigs[i].name, 0);
                if (sigs[i].no == SIGTERM || sigs[i].no == SIGINT) {
                    say("exit %ld%s", "", 0);
                    return 0;
                }
            }
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        scan();
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}
