/*  signals: SIGINT, SIGTERM and SIGHUP delivered through a signalfd that is
 *  polled beside the sockets. Call amity_signals_open before creating the
 *  ZeroMQ context, so that libzmq's threads inherit the blocked mask. */
#ifndef AMITY_SIGNALS_H
#define AMITY_SIGNALS_H

/*  Blocks INT, TERM, HUP (and ignores PIPE); returns the signalfd or AMITY_EIO. */
int amity_signals_open(void);

/*  Reads one pending signal; returns its number, 0 when none is pending,
 *  AMITY_EIO on failure. */
int amity_signals_read(int fd);

void amity_signals_close(int *fd);

/*  Called once a daemon starts stopping: from then on a second SIGINT or
 *  SIGTERM ends the process at once with exit code 1, even while the last
 *  commit or zmq_ctx_term (up to the linger time) runs outside the loop. */
void amity_signals_arm_second(void);

#endif
