/* libFuzzer target: the control plane's request parser and dispatcher
 * (ctl_handle_line through server_ctl_request, the function every control
 * connection's line goes to), against a server with two demo devices, one
 * of them a PF with two VFs a config write can enable.
 *
 * Input layout (see make_corpus.py, which writes the seeds):
 *
 *   u8 control     bit 0: the peer may change things (set, config-write,
 *                  inject-intx), as the server's own user; otherwise a
 *                  read-only peer (everything else gets EPERM)
 *   then lines     separated by '\n'; a line ends at its first NUL as one
 *                  read from a connection does; a line longer than the
 *                  connection's limit ends the input as it ends a
 *                  connection
 *
 * The server is created once and never started: no control socket, no
 * device sockets (VFs the input enables do get sockets, in a private
 * temporary directory, as vfpmd gives them). Every reply must be a JSON
 * object with a boolean "ok"; anything else aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CTL_MAX_LINE 4096   /* lib/server/ctl.c */

static struct vfpm_server *g_srv;

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz_ctl: %s: %s\n", what, strerror(err));
	abort();
}

static char *request(const char *line, bool may_mutate)
{
	char *rep = server_ctl_request(g_srv, line, may_mutate);
	if (!rep)
		die("server_ctl_request", ENOMEM);
	struct json_object *o = json_tokener_parse(rep), *ok;
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "ok", &ok) || !json_object_is_type(ok, json_type_boolean)) {
		fprintf(stderr, "fuzz_ctl: malformed reply to '%s': '%s'\n", line, rep);
		abort();
	}
	json_object_put(o);
	return rep;
}

static char g_dir[] = "/tmp/vfpm-fuzz-ctl.XXXXXX";

/* At exit: the sockets of VFs still enabled, then the directory. */
static void remove_dir(void)
{
	DIR *d = opendir(g_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(g_dir);
}

static void setup_once(void)
{
	char *dir = g_dir;
	if (!mkdtemp(dir))
		die("mkdtemp", errno);
	atexit(remove_dir);
	struct server_opts o = { .verbosity = getenv("FUZZ_VERBOSE") ? 3 : -1, .ctl_path = "none" };
	int rc = server_create(&o, &g_srv);
	if (rc)
		die("server_create", -rc);
	char spec[256];
	snprintf(spec, sizeof(spec), "demo,name=demo,socket=%s/demo.sock", dir);
	if ((rc = server_add_device(g_srv, spec, NULL)))
		die("server_add_device demo", -rc);
	snprintf(spec, sizeof(spec), "demo,name=pf,total_vfs=2,socket=%s/pf.sock", dir);
	if ((rc = server_add_device(g_srv, spec, NULL)))
		die("server_add_device pf", -rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_srv)
		setup_once();
	if (size < 1)
		return 0;
	bool may_mutate = data[0] & 1;
	data++;
	size--;

	/* The PCI transition delays are plain sleeps (up to 100 ms for
	 * D3cold); an input may set them, the next starts without. */
	free(request("{\"cmd\":\"set\",\"device\":\"demo\",\"key\":\"pm_delays\",\"value\":\"none\"}",
		     true));
	free(request("{\"cmd\":\"set\",\"device\":\"pf\",\"key\":\"pm_delays\",\"value\":\"none\"}",
		     true));

	char *line = malloc(CTL_MAX_LINE + 1);
	if (!line)
		die("malloc", ENOMEM);
	while (size) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t len = nl ? (size_t)(nl - data) : size;
		if (len >= CTL_MAX_LINE)
			break;   /* "line too long": the connection ends */
		memcpy(line, data, len);
		line[len] = '\0';
		free(request(line, may_mutate));
		if (!nl)
			break;   /* a connection serves whole lines only */
		data += len + 1;
		size -= len + 1;
	}
	free(line);
	return 0;
}
