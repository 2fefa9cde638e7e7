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
-- It is an AFTER trigger whose WHEN clause holds the list: PostgreSQL evaluates the clause as it
-- writes the row and queues nothing for a legal move, so the moves the engine makes cost one
-- comparison and no PL/pgSQL call. (A BEFORE row trigger would make every UPDATE of runs, even a
-- heartbeat, lock its row once more first.) An illegal move queues the call, which raises at the
-- end of the statement and rolls the statement back.
create function runs_refuse_illegal_transition() returns trigger language plpgsql as $$
begin
    raise exception 'run % cannot go from % to %', old.id, old.status, new.status
        using errcode = 'check_violation',
              constraint = 'runs_status_transition',
              hint = 'A run moves QUEUED -> RUNNING | CANCELLED and RUNNING -> SUCCESS | FAILED | QUEUED; finished runs never change state.';
end
$$;

create trigger runs_status_transition
    after update of status on runs
    for each row
    when (old.status is distinct from new.status
          and (old.status, new.status) not in (('QUEUED', 'RUNNING'), ('QUEUED', 'CANCELLED'),
                                               ('RUNNING', 'SUCCESS'), ('RUNNING', 'FAILED'),
                                               ('RUNNING', 'QUEUED')))
    execute function runs_refuse_illegal_transition();

comment on trigger runs_status_transition on runs is
    'Refuses a change of status that is not a move of the run state machine (see migration 0011).';
