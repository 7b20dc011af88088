/* yamlout.h: canonical YAML output of the resolved pipeline and of stage parameter
 * blocks, and the shortest round-trip text of a real.
 * Not the parser (config.h) and not the YAML reference (doc.c). */
#ifndef BGFM_YAMLOUT_H
#define BGFM_YAMLOUT_H

#include <stddef.h>
#include <stdio.h>

#include "bgfm/config.h"

/* Shortest "%.*g" text that reads back (strtod) as exactly x. */
void yaml_real_text(double x, char *buf, size_t n);

/* Write one params block canonically ("key: value" lines, nested maps for dotted
 * keys, table order, set or defaulted values only, reals in shortest round-trip
 * form) at `indent` spaces. The engine hashes this text into manifests.
 * Returns 0 or BGFM_EIO when the stream reports an error. */
int params_write(const bgfm_params *p, FILE *f, int indent);

/* Write the resolved pipeline (every default filled in, paths absolute) as YAML. */
void config_write_resolved(const bgfm_pipeline *p, FILE *f);

#endif
