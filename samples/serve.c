/* serve: the smallest embedding program. Serves one device of the model
 * linked with it (any sample: it calls the sample's vfpm_model_entry()),
 * with a control plane, until SIGINT or SIGTERM.
 *
 *	cc -o serve serve.c timer.c $(pkg-config --cflags --libs vfpm)
 *	./serve /tmp/timer.sock /tmp/timer.ctl
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <vfpm/server.h>

static struct vfpm_server *srv;

static void on_signal(int sig)
{
	vfpm_server_request_stop(srv);   /* async-signal-safe */
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SOCKET CONTROL-SOCKET\n", argv[0]);
		return 2;
	}
	const struct vfpm_server_opts o = { .size = sizeof(o), .verbosity = 1,
					    .ctl = true, .ctl_path = argv[2] };
	const struct vfpm_model *model = vfpm_model_entry();
	int rc = vfpm_server_new(&o, &srv);
	if (!rc)
		rc = vfpm_server_add_model(srv, model);
	if (!rc)
		rc = vfpm_server_add_device(srv, model->name, argv[1]);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!rc)
		rc = vfpm_server_run(srv);   /* start, wait for the signal, stop */
	vfpm_server_free(srv);
	if (rc)
		fprintf(stderr, "%s: %s\n", argv[0], strerror(-rc));
	return rc ? 1 : 0;
}
