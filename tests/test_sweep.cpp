// Every flag and file of every sample, given the ways users get them wrong: a missing value,
// an empty, negative, huge, non-numeric or unknown value, a directory where a file belongs, a
// special file (FIFO, /dev/zero), an empty or garbage file, an unknown flag. Each must end
// with a message that names the flag or the file, exit status 1 (2 for info's usage), never a
// signal or 0, and leave no output file behind.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace fs = std::filesystem;

namespace {

struct Case {
  std::string command;   // the whole command line
  std::string mentions;  // the message must contain this (the flag or the path)
  int status = 1;
};

const std::string kModel = std::string(VKALEX_MODEL_DIR) + "/alexnet-fashion.json";
const std::string kImage = std::string(VKALEX_TEST_DATA_DIR) + "/../../samples/data/fashion-test-0000-ankle-boot.png";

// Values that no number or count flag takes, each with the reason.
const std::vector<std::string> kBadNumbers = {"", "-1", "abc", "1e999", "99999999999999999999999", "0x10", "nan", "5x"};

}  // namespace

TEST_CASE("every flag and file of every sample is refused cleanly when malformed", "[cli][errors][sweep][hardening]") {
  test::TempDir dir;
  const std::string fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string empty = dir / "empty";
  std::ofstream(empty).close();
  const std::string garbage = dir / "garbage";
  std::ofstream(garbage) << "\x01\x02 this is no file of any kind vkalex reads \xff\xfe";
  const std::string missing = dir / "missing";
  const std::string folder = dir.path.string();
  const std::vector<std::string> bad_files = {missing, folder, fifo, "/dev/zero", empty, garbage};
  const std::string out = dir / "out";

  const std::string classify = std::string(VKALEX_CLASSIFY_EXE) + " ";
  const std::string train = std::string(VKALEX_TRAIN_EXE) + " --model " + kModel +
                            " --data fashion-mnist --limit 16 --test-limit 16 --batch 16 --epochs 1 --out " + out + " ";
  const std::string bench = std::string(VKALEX_BENCH_EXE) + " --model " + kModel + " --batch 1 --repeat 1 --warmup 0 ";
  const std::string embed = std::string(VKALEX_EMBED_EXE) + " ";
  const std::string info = std::string(VKALEX_INFO_EXE) + " --list-only ";

  std::vector<Case> cases;
  // Number and count flags.
  for (const auto& [base, flag] : std::vector<std::pair<std::string, std::string>>{
           {classify + kImage + " ", "--top"},        {train, "--epochs"},      {train, "--batch"},
           {train, "--lr"},                           {train, "--momentum"},    {train, "--weight-decay"},
           {train, "--patience"},                     {train, "--limit"},       {train, "--test-limit"},
           {train, "--stop-after"},                   {train, "--seed"},        {train, "--checkpoint-every"},
           {train, "--lr-steps"},                     {bench, "--batch"},       {bench, "--repeat"},
           {bench, "--warmup"},                       {bench, "--seed"}}) {
    for (const std::string& v : kBadNumbers) cases.push_back({base + flag + " '" + v + "'", flag});
    cases.push_back({base + flag, flag});  // the value missing
  }
  for (const std::string& v : kBadNumbers) cases.push_back({info + "--seed '" + v + "'", "--seed", 2});
  cases.push_back({info + "--seed", "--seed", 2});
  // Choices.
  for (const std::string v : {"", "bogus"}) {
    cases.push_back({train + "--init '" + std::string(v) + "'", "--init"});
    cases.push_back({train + "--augment '" + std::string(v) + "'", "--augment"});
    cases.push_back({bench + "--mode '" + std::string(v) + "'", "--mode"});
  }
  for (const std::string v : {"nosuchdevice", "99"}) {
    cases.push_back({classify + "--device " + v + " " + kImage, v});
    cases.push_back({train + "--device " + v, v});
    cases.push_back({bench + "--device " + v, v});
  }
  // Unknown flags.
  cases.push_back({classify + "--bogus " + kImage, "--bogus"});
  cases.push_back({train + "--bogus", "--bogus"});
  cases.push_back({bench + "--bogus", "--bogus"});
  cases.push_back({embed + "--bogus " + kImage, "--bogus"});
  cases.push_back({info + "--bogus", "--bogus", 2});
  // Files.
  for (const std::string& f : bad_files) {
    cases.push_back({classify + "--model " + f + " " + kImage, f});
    cases.push_back({classify + "--weights " + f + " " + kImage, f});
    cases.push_back({classify + "--labels " + f + " " + kImage, f});
    cases.push_back({classify + f, f});
    cases.push_back({std::string(VKALEX_TRAIN_EXE) + " --data fashion-mnist --out " + out + " --model " + f, f});
    cases.push_back({train + "--resume " + f, f});
    cases.push_back({train + "--eval-only --weights " + f, f});
    cases.push_back({std::string(VKALEX_BENCH_EXE) + " --batch 1 --model " + f, f});
    cases.push_back({embed + "--model " + f + " " + kImage, f});
    cases.push_back({embed + f, f});
  }
  // Folders: a file where the data folder or the output folder belongs.
  cases.push_back({std::string(VKALEX_TRAIN_EXE) + " --model " + kModel + " --data " + garbage + " --out " + out, garbage});
  cases.push_back({std::string(VKALEX_TRAIN_EXE) + " --model " + kModel + " --data fashion-mnist --limit 16 --out " + garbage,
                   garbage});
  // An output file that cannot be written: no file, and no temporary left beside it.
  cases.push_back({bench + "--json " + missing + "/result.json", missing + "/result.json"});

  int checked = 0;
  for (const Case& c : cases) {
    const auto [status, text] = test::run_command(c.command, true);
    INFO(c.command << "\n" << text);
    CHECK(status == c.status);  // -1 (a signal) and 0 both fail here
    CHECK_THAT(text, Catch::Contains(c.mentions));
    CHECK(!fs::exists(out + "/weights.safetensors"));
    CHECK(!fs::exists(missing));
    ++checked;
  }
  CHECK(checked > 200);
  // Nothing left in the temporary folder but what the test made (and train's empty --out).
  for (const auto& e : fs::directory_iterator(dir.path)) {
    const std::string name = e.path().filename().string();
    INFO(name);
    CHECK((name == "fifo" || name == "empty" || name == "garbage" || name == "out"));
  }
}
