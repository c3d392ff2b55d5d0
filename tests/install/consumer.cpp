// A program outside the vkalex tree, built against an installed vkalex (find_package or
// pkg-config): it classifies one image with the installed Fashion-MNIST model and exits 0 only
// if the top class is the one given. Usage: consumer MODEL_DIR IMAGE EXPECTED_CLASS_NAME
// It also links the Vulkan loader and calls it directly, as a game does: an engine that defined
// global vk* symbols of its own (volk's function pointers) would take those calls over.
#include <vulkan/vulkan.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "vkalex/vkalex.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR IMAGE EXPECTED_CLASS_NAME\n");
    return 2;
  }
  uint32_t loader_version = 0;
  if (vkEnumerateInstanceVersion(&loader_version) != VK_SUCCESS || loader_version < VK_API_VERSION_1_1) {
    std::fprintf(stderr, "consumer: the host's own call to the Vulkan loader failed\n");
    return 1;
  }
  try {
    const vkalex::ModelDesc model = vkalex::load_model(std::string(argv[1]) + "/alexnet-fashion.json");
    const std::vector<std::string> labels = vkalex::load_labels(model.labels_path, model.classes);
    vkalex::Context context;
    vkalex::Net net(context, model);
    net.load_weights(vkalex::SafeTensors(model.weights_path));
    const vkalex::Image image = vkalex::load_image(argv[2], model.channels);
    const vkalex::ForwardResult r =
        net.forward(vkalex::preprocess_image(image, model.preprocess, model.channels, model.height, model.width));
    const auto best = std::max_element(r.probabilities.begin(), r.probabilities.end()) - r.probabilities.begin();
    std::printf("%s: %s (%.3f) on %s\n", argv[2], labels[best].c_str(), r.probabilities[best], context.device().name.c_str());
    return labels[best] == argv[3] ? 0 : 1;
  } catch (const vkalex::Error& e) {
    // Caught by its type across the library boundary: the exception's type information is
    // exported with the public API.
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: not a vkalex::Error: %s\n", e.what());
    return 1;
  }
}
