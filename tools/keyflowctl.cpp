// keyflowctl: the operator's admin tool, a client of a keyflowd node's admin API
// (docs/admin-api.md, keyflowd --admin-address). The commands:
// - Job: status, deploy, stop, rescale (keyflowctl/job.cpp);
// - Snapshots: snapshot, snapshots, inspect, diff, restore, export, import
//   (keyflowctl/snapshots.cpp);
// - Dead letters: dlq list, dlq replay (keyflowctl/dlq.cpp).
// keyflowctl/client.cpp talks to the node (token, TLS, errors), keyflowctl/render.cpp formats.
//
// Exit codes: 0 done; 1 the node answered with an error (500) or could not be reached; 2 a
// usage error or a bad request the node rejected (400, 404); 3 authentication failed (401);
// 4 refused in the node's current state (409). Errors go to stderr as "keyflowctl: <message>".

#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "keyflowctl/keyflowctl.hpp"

namespace {

/// CLI11's help, tidied: one line per command in a command list (the first line of its
/// description; a command's own --help shows all of it), options shown with their value's
/// name only (defaults are in the descriptions), a blank line after the description and
/// never two blank lines in a row.
class help_formatter : public CLI::Formatter {
public:
  /// A command's line in its parent's list.
  std::string make_subcommand(const CLI::App* sub) const override {
    auto desc = sub->get_description();
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_name(), desc.substr(0, desc.find('\n')), 14);
    return out.str();
  }
  /// " VALUE" after an option's name ("" for flags and positionals).
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_positional() || opt->get_type_size() == 0)
      return {};
    return " " + opt->get_type_name();
  }
  /// The whole help of `app`.
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override {
    auto help = CLI::Formatter::make_help(app, std::move(name), mode);
    if (auto at = help.find("\nUsage:"); at != std::string::npos && at > 0)
      help.insert(at, "\n");
    for (size_t at; (at = help.find("\n\n\n")) != std::string::npos;)
      help.erase(at, 1);
    return help;
  }
};

/// The footer of `keyflowctl --help`: global options, exit codes, environment.
constexpr const char* main_footer =
    R"(The global options go before or after the command.

On a cluster any node answers: snapshot, stop, restore and deploy go to the coordinator
and act on every region (deploy: stop with a snapshot, every node takes the new version,
restart from the snapshot); rescale is refused (add or stop nodes).

Exit codes:
  0  success
  1  the node answered with an error (500) or could not be reached
  2  usage error, or a bad request the node rejected (400, 404)
  3  authentication failed (401): see --token-file
  4  refused in the node's current state (409), e.g. a deploy that would drop an
     operator's state, a snapshot name that exists, a job already stopped

Environment:
  KEYFLOW_ADMIN        the node, when --node is not given
  KEYFLOW_ADMIN_TOKEN  the admin token, when --token-file is not given (else the file
                       ./keyflow-state-admin-token is used if it exists)

Run 'keyflowctl COMMAND --help' for a command's options and an example.)";

/// The deepest command `app` parsed so far (`dlq` after `keyflowctl dlq frob`) and how many
/// words lead to it with the program's name (argv[depth] is the word after them).
std::pair<const CLI::App*, int> deepest(const CLI::App& app) {
  const CLI::App* at = &app;
  int depth = 1;
  for (auto subs = at->get_subcommands(); !subs.empty(); subs = at->get_subcommands()) {
    at = subs.front();
    ++depth;
  }
  return {at, depth};
}

/// "keyflowctl dlq" of `app` and its parents.
std::string command_path(const CLI::App* app) {
  std::string path = app->get_name();
  for (auto* p = app->get_parent(); p != nullptr; p = p->get_parent())
    path = p->get_name() + " " + path;
  return path;
}

/// "list, replay": the commands of `app`.
std::string command_names(const CLI::App* app) {
  std::string names;
  for (const auto* c : app->get_subcommands({}))
    names += (names.empty() ? "" : ", ") + c->get_name();
  return names;
}

/// The message of a usage error: CLI11's, or clearer for a missing or unknown command.
std::string usage_message(const CLI::ParseError& e, const CLI::App* at, int depth, int argc,
                          char** argv) {
  if (at->get_subcommands({}).empty())
    return e.what();
  if (depth < argc && argv[depth][0] != '-')
    return "unknown command '" + std::string{argv[depth]} + "'" +
           (depth > 1 ? " of '" + command_path(at) + "'" : "") +
           " (commands: " + command_names(at) + ")";
  if (depth < argc)
    return e.what();
  return "a command is required (commands: " + command_names(at) + ")";
}

} // namespace

/// Parses the command line, runs the command, maps failures to exit codes.
int main(int argc, char** argv) {
  CLI::App app{"keyflowctl: the Keyflow admin tool, a client of a node's admin API\n"
               "(keyflowd --admin-address; docs/admin-api.md)",
               "keyflowctl"};
  auto formatter = std::make_shared<help_formatter>();
  formatter->column_width(24);
  formatter->label("SUBCOMMAND", "COMMAND");
  app.formatter(formatter);
  app.require_subcommand(1);
  app.footer(main_footer);
  keyflowctl::global_options g;
  // Global options go before the command too (`keyflowctl --node H:P status`).
  keyflowctl::add_global_options(app, g);
  std::vector<keyflowctl::command> commands;
  keyflowctl::add_job_commands(app, g, commands);
  keyflowctl::add_snapshot_commands(app, g, commands);
  keyflowctl::add_dlq_commands(app, g, commands);

  if (argc < 2) {
    std::cerr << app.help() << "keyflowctl: a command is required\n";
    return keyflowctl::exit_usage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e); // --help
    auto [at, depth] = deepest(app);
    std::cerr << "keyflowctl: " << usage_message(e, at, depth, argc, argv) << "\nRun '"
              << command_path(at) << " --help' for usage.\n";
    return keyflowctl::exit_usage;
  }
  try {
    for (const auto& c : commands)
      if (c.app->parsed())
        return c.run();
  } catch (const keyflowctl::failure& f) {
    std::cerr << "keyflowctl: " << f.what() << "\n";
    return f.code();
  } catch (const std::exception& e) {
    std::cerr << "keyflowctl: " << e.what() << "\n";
    return keyflowctl::exit_node_error;
  }
  std::cerr << "keyflowctl: a command is required\n";
  return keyflowctl::exit_usage;
}
