#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int sample_proc(pid_t pid, struct proc_sample *s)
{
	char path[320], buf[4096];
	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the command name (which may hold spaces): utime and stime are
	 * fields 14 and 15 */
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -EPROTO;
	s->ticks = ut + st;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *sf = fopen(path, "r");
		if (sf) {
			unsigned long long ns = 0;
			if (fscanf(sf, "%llu", &ns) == 1)
				s->run_ns += ns;
			fclose(sf);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		sf = fopen(path, "r");
		if (!sf)
			continue;   /* the thread just ended */
		char line[256];
		while (fgets(line, sizeof(line), sf)) {
			unsigned long long v;
			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
				s->vol += v;
			else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				s->invol += v;
		}
		fclose(sf);
		s->threads++;
	}
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	while (d && (e = readdir(d)))
		s->fds += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return 0;
}
