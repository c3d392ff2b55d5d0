/* A C99 program outside the vkalex tree, built against an installed vkalex (find_package or
 * pkg-config) through the C API only: it classifies one image (decoded by stb_image) with the
 * installed Fashion-MNIST model on a device of vkalex's own and exits 0 only if the top class
 * is the one given. Usage: consumer_c MODEL_DIR IMAGE EXPECTED_CLASS_NAME */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>

#include "vkalex/vkalex.h"

static int check(vkalex_status s, const vkalex_context* ctx, const char* what) {
  char message[1024];
  if (s == VKALEX_OK) return 0;
  vkalex_last_error(ctx, message, sizeof message);
  fprintf(stderr, "consumer_c: %s: %s: %s\n", what, vkalex_status_name(s), message);
  return 1;
}

int main(int argc, char** argv) {
  char model[4096], name[256];
  vkalex_context* ctx = NULL;
  vkalex_net* net = NULL;
  vkalex_net_info info;
  unsigned char* pixels;
  float probabilities[64];
  int w = 0, h = 0, n = 0, ok = 0;
  uint32_t c, best = 0;
  if (argc != 4) {
    fprintf(stderr, "usage: consumer_c MODEL_DIR IMAGE EXPECTED_CLASS_NAME\n");
    return 2;
  }
  snprintf(model, sizeof model, "%s/alexnet-fashion.json", argv[1]);
  pixels = stbi_load(argv[2], &w, &h, &n, 3);
  if (!pixels) {
    fprintf(stderr, "consumer_c: cannot decode %s\n", argv[2]);
    return 1;
  }
  if (check(vkalex_context_create(NULL, &ctx), NULL, "vkalex_context_create")) return 1;
  if (!check(vkalex_net_create(ctx, model, NULL, &net), ctx, "vkalex_net_create") &&
      !check(vkalex_net_get_info(net, &info), ctx, "vkalex_net_get_info") && info.classes <= 64 &&
      !check(vkalex_classify_rgb8(net, pixels, (size_t)w * (size_t)h * 3, (uint32_t)w, (uint32_t)h, 1, probabilities,
                                  info.classes),
             ctx, "vkalex_classify_rgb8")) {
    for (c = 1; c < info.classes; ++c)
      if (probabilities[c] > probabilities[best]) best = c;
    if (!check(vkalex_net_class_name(net, best, name, sizeof name, NULL), ctx, "vkalex_net_class_name")) {
      printf("%s: %s (%.3f), through the C API of vkalex %s\n", argv[2], name, probabilities[best], vkalex_version());
      ok = strcmp(name, argv[3]) == 0;
    }
  }
  stbi_image_free(pixels);
  if (net) check(vkalex_net_destroy(net), ctx, "vkalex_net_destroy");
  check(vkalex_context_destroy(ctx), ctx, "vkalex_context_destroy");
  return ok ? 0 : 1;
}
