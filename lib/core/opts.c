/* key=value option lists of --device MODEL,key=value,... */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"

void opts_free(struct vfpm_opts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->kv[i].key);
		free(o->kv[i].val);
	}
	free(o->kv);
	o->kv = NULL;
	o->n = 0;
}

int opts_parse(const char *s, struct vfpm_opts *out)
{
	out->n = 0;
	out->kv = NULL;
	if (!s || !*s)
		return 0;
	char *dup = strdup(s);
	if (!dup)
		return -ENOMEM;
	int rc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		for (size_t i = 0; i < out->n; i++) {
			if (!strcmp(out->kv[i].key, tok)) {
				rc = -EEXIST;   /* a key given twice is a typo, not a choice */
				goto out;
			}
		}
		struct vfpm_kv *kv = realloc(out->kv, (out->n + 1) * sizeof(*kv));
		if (!kv) {
			rc = -ENOMEM;
			break;
		}
		out->kv = kv;
		kv[out->n].key = strdup(tok);
		kv[out->n].val = strdup(eq + 1);
		out->n++;
		if (!kv[out->n - 1].key || !kv[out->n - 1].val) {
			rc = -ENOMEM;
			break;
		}
	}
out:
	free(dup);
	if (rc)
		opts_free(out);
	return rc;
}

VFPM_EXPORT const char *vfpm_opts_get(const struct vfpm_opts *o, const char *key)
{
	for (size_t i = 0; o && key && i < o->n; i++)
		if (!strcmp(o->kv[i].key, key))
			return o->kv[i].val;
	return NULL;
}

int opts_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

VFPM_EXPORT int vfpm_opts_bool(const struct vfpm_opts *o, const char *key, bool def, bool *out)
{
	if (!key || !out)
		return -EINVAL;
	const char *v = vfpm_opts_get(o, key);
	*out = def;
	if (!v)
		return -ENOENT;
	return opts_parse_bool(v, out);
}

VFPM_EXPORT int vfpm_opts_u64(const struct vfpm_opts *o, const char *key, uint64_t def,
			      uint64_t min, uint64_t max, uint64_t *out)
{
	if (!key || !out || min > max)
		return -EINVAL;
	const char *v = vfpm_opts_get(o, key);
	*out = def;
	if (!v)
		return -ENOENT;
	if (!*v || *v == '-')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (errno || *end)
		return -EINVAL;
	if (x < min || x > max)
		return -ERANGE;
	*out = x;
	return 0;
}
