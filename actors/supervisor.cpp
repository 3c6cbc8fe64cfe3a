// Supervisor actor: one per node. It monitors the actors of each pipeline instance it is
// told about; when one terminates abnormally it tells the node's supervision, which
// schedules a restart of the whole instance from its last checkpoint with backoff. The
// node's control loop performs the restart (it owns the state store the actors use).

#include <map>

#include <caf/all.hpp>

#include "actors/spawn.hpp"

namespace keyflow {

namespace {

struct supervisor_state {
  std::shared_ptr<supervision> sup;
  /// Monitored actor -> (instance, incarnation).
  std::map<caf::actor_addr, std::pair<uint32_t, uint64_t>> watched;
  static inline const char* name = "keyflow.supervisor";
};

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

/// True for exits the node causes itself: a drain, a stop, a restart.
bool deliberate(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::user_shutdown || reason == caf::exit_reason::kill ||
         reason == caf::exit_reason::normal;
}

supervisor_actor::behavior_type supervisor(self_ptr self, std::shared_ptr<supervision> sup) {
  self->state.sup = std::move(sup);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.watched.find(dm.source);
    if (i == st.watched.end())
      return;
    auto [instance, incarnation] = i->second;
    st.watched.erase(i);
    if (!deliberate(dm.reason))
      st.sup->actor_failed(instance, incarnation, self->system().render(dm.reason));
  });
  return {
      [self](atom::monitor, std::vector<caf::actor>& actors, uint32_t instance,
             uint64_t incarnation) {
        for (auto& a : actors) {
          if (!a)
            continue;
          self->state.watched[a.address()] = {instance, incarnation};
          self->monitor(a);
        }
      },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, std::shared_ptr<supervision> sup) {
  return sys.spawn(supervisor, std::move(sup));
}

} // namespace keyflow
