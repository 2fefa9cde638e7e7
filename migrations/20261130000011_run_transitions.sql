-- The run state machine, enforced where nothing can bypass it. A run moves only along these
-- edges; any other change of runs.status (by the engine, the API or a person at psql) is
-- refused with constraint runs_status_transition:
--
--     QUEUED  -> RUNNING     a worker claims it
--     QUEUED  -> CANCELLED   cancelled while queued
--     RUNNING -> SUCCESS     its outcome, fenced by the lease
--     RUNNING -> FAILED      its outcome, or its worker was lost too often
--     RUNNING -> QUEUED      a lease lost, given back at shutdown, or a retry
--
-- SKIPPED and MISSED rows are born terminal; every finished state is final. The same list is
-- RunStatus::can_become in src/runs/mod.rs (tests/tests/run_states.rs checks they agree).
-- The trigger's WHEN clause is evaluated without calling the function, so legal moves (every
-- move the engine makes) cost one comparison, not a PL/pgSQL call.
create function runs_refuse_illegal_transition() returns trigger language plpgsql as $$
begin
    raise exception 'run % cannot go from % to %', old.id, old.status, new.status
        using errcode = 'check_violation',
              constraint = 'runs_status_transition',
              hint = 'A run moves QUEUED -> RUNNING | CANCELLED and RUNNING -> SUCCESS | FAILED | QUEUED; finished runs never change state.';
end
$$;

create trigger runs_status_transition
    before update of status on runs
    for each row
    when (old.status is distinct from new.status
          and (old.status, new.status) not in (('QUEUED', 'RUNNING'), ('QUEUED', 'CANCELLED'),
                                               ('RUNNING', 'SUCCESS'), ('RUNNING', 'FAILED'),
                                               ('RUNNING', 'QUEUED')))
    execute function runs_refuse_illegal_transition();

comment on trigger runs_status_transition on runs is
    'Refuses a change of status that is not a move of the run state machine (see migration 0011).';
