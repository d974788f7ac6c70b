/* A stand-in for a mesh proxy (Envoy under Istio's pilot-agent) in the
 * node suite's sidecar scenarios (tests/node/scenarios.py, issue 22).
 *
 *   proxy LISTEN_PORT UPSTREAM_PORT DRAIN_SECONDS
 *
 * Listens on 0.0.0.0:LISTEN_PORT and forwards every accepted TCP connection
 * byte for byte to 127.0.0.1:UPSTREAM_PORT (the application in the same pod
 * network namespace), one forked child per connection, half-closes passed
 * on (EOF one way becomes shutdown(SHUT_WR) the other way). If the upstream
 * refuses, the client's connection is closed without a byte.
 *
 * What it imitates: the shape of Istio's shutdown of a sidecar. On SIGTERM
 * pilot-agent starts Envoy's drain and waits terminationDrainDuration (5 s
 * by default; proxy.istio.io/config "terminationDrainDuration: 2s") before
 * it kills Envoy. During that time Envoy's listeners still accept new
 * connections and established ones keep flowing. So this program, on
 * SIGTERM: keeps accepting and forwarding for DRAIN_SECONDS, then exits
 * (code 0) at once, SIGKILLing every connection's child first: whatever is
 * still in flight is cut, as when pilot-agent ends Envoy.
 *
 * What it does not imitate: no HTTP awareness at all (no `Connection:
 * close` or GOAWAY sent while draining, no 503s, no retries, no
 * keep-alive handling); no EXIT_ON_ZERO_ACTIVE_CONNECTIONS (it never exits
 * early when idle); no readiness drain (no /healthz/ready on 15021 going
 * unready); no mTLS, no iptables redirection (the Service targets its port
 * directly), no outbound side, no admin interface, no config from istiod.
 * A second SIGTERM changes nothing; SIGINT is treated as SIGTERM.
 *
 * Its log (stderr, epoch seconds) says when it started, got SIGTERM and
 * exited, with the number of connections it cut. It is the container's
 * PID 1: it reaps its children, and each child dies with it
 * (PR_SET_PDEATHSIG) should it be killed outright. It never dies of
 * SIGPIPE. Built with `gcc -static` by tests/node/images.py. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXCHILD 4096

static volatile sig_atomic_t terminate;
static pid_t children[MAXCHILD];
static int nchildren;

static void on_term(int signo) {
    (void)signo;
    terminate = 1;
}

static void on_chld(int signo) { (void)signo; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%.6f proxy: ", now());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int port(const char *text) {
    char *end;
    long n = strtol(text, &end, 10);
    if (*end || n <= 0 || n > 65535) {
        fprintf(stderr, "proxy: bad port %s\n", text);
        exit(2);
    }
    return (int)n;
}

/* Copies what is readable from `from` to `to`; 0 at EOF or error. */
static int pump(int from, int to) {
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += w;
    }
    return 1;
}

static void forward(int client, int upstream_port, pid_t parent) {
    /* Die with the parent, whatever ends it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(upstream_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (upstream < 0 || connect(upstream, (struct sockaddr *)&to, sizeof to) < 0)
        _exit(1); /* closes the client: no server behind */
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct pollfd fds[2] = {{.fd = client, .events = POLLIN}, {.fd = upstream, .events = POLLIN}};
    int open_ways = 2;
    while (open_ways > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int other = i == 0 ? upstream : client;
            int r = pump(fds[i].fd, other);
            if (r < 0)
                _exit(1); /* the other side is gone */
            if (r == 0) { /* EOF (or reset): pass the half-close on */
                shutdown(other, SHUT_WR);
                fds[i].fd = -1;
                open_ways--;
            }
        }
    }
    _exit(0);
}

static void reap(void) {
    pid_t pid;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
        for (int i = 0; i < nchildren; i++) {
            if (children[i] == pid) {
                children[i] = children[--nchildren];
                break;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: proxy LISTEN_PORT UPSTREAM_PORT DRAIN_SECONDS\n");
        return 2;
    }
    int listen_port = port(argv[1]), upstream_port = port(argv[2]);
    double drain = atof(argv[3]);
    setvbuf(stderr, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_term; /* no SA_RESTART: poll() returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(listen_port)};
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1024) < 0) {
        perror("proxy: listen");
        return 1;
    }
    say("listening on 0.0.0.0:%d, forwarding to 127.0.0.1:%d, drain %gs", listen_port,
        upstream_port, drain);
    pid_t self = getpid();
    double deadline = 0;
    unsigned long accepted = 0, during_drain = 0;
    for (;;) {
        if (terminate && !deadline) {
            deadline = now() + drain;
            say("SIGTERM received: draining %gs, still accepting (%d connections open)", drain, nchildren);
        }
        reap();
        int timeout = 1000;
        if (deadline) {
            double left = deadline - now();
            if (left <= 0)
                break;
            timeout = (int)(left * 1000) + 1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout) <= 0 || !(p.revents & POLLIN))
            continue;
        int client = accept(fd, NULL, NULL);
        if (client < 0)
            continue;
        accepted++;
        if (deadline)
            during_drain++;
        reap();
        pid_t pid = nchildren < MAXCHILD ? fork() : -1;
        if (pid == 0) {
            close(fd);
            forward(client, upstream_port, self);
        }
        if (pid > 0)
            children[nchildren++] = pid;
        close(client);
    }
    close(fd);
    reap();
    int cut = nchildren;
    for (int i = 0; i < nchildren; i++)
        kill(children[i], SIGKILL);
    say("drain over: exit, cutting %d open connections (%lu accepted, %lu of them while draining)", cut,
        accepted, during_drain);
    return 0;
}
