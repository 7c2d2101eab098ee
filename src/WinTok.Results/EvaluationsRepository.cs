using Dapper;

namespace WinTok.Results;

/// <summary>
/// Finished evaluations and their metric values: recorded once per job (the finisher of the last partition records
/// them; a repeat is a no-op), listed for <c>wintok metrics</c>, schedules, trends and the dashboard.
/// </summary>
public sealed class EvaluationsRepository(ResultsDatabase database, TimeProvider timeProvider)
{
    /// <summary>
    /// Records the evaluation and its values in one transaction. Returns false when the job's evaluation is already
    /// recorded (a redelivered finish), in which case nothing is written.
    /// </summary>
    public Task<bool> RecordAsync(NewEvaluation evaluation, IReadOnlyCollection<MetricValue> metrics, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var inserted = await database.ExecuteAsync(connection, transaction, """
                INSERT INTO evaluations (job_id, checkpoint_sha256, checkpoint_path, model_kind, dataset, dataset_name, preprocessing,
                                         protocol, image_count, schedule_name, training_epoch, training_iteration, created_at)
                VALUES (@JobId, @CheckpointSha256, @CheckpointPath, @ModelKind, @Dataset, @DatasetName, @Preprocessing,
                        @Protocol, @ImageCount, @ScheduleName, @TrainingEpoch, @TrainingIteration, @Now)
                ON CONFLICT (job_id) DO NOTHING
                """, new
                {
                    evaluation.JobId, evaluation.CheckpointSha256, evaluation.CheckpointPath, evaluation.ModelKind, evaluation.Dataset,
                    evaluation.DatasetName, evaluation.Preprocessing, evaluation.Protocol, evaluation.ImageCount, evaluation.ScheduleName,
                    evaluation.TrainingEpoch, evaluation.TrainingIteration, Now = now,
                }, token);
            if (inserted == 0) return false;
            await database.ExecuteAsync(connection, transaction, $"""
                INSERT INTO metrics (job_id, checkpoint, metric_name, metric_value, details, created_at)
                VALUES (@JobId, @Checkpoint, @Name, @Value, {database.Json("@DetailsJson")}, @Now)
                """, metrics.Select(m => new { evaluation.JobId, Checkpoint = evaluation.CheckpointSha256, m.Name, m.Value, m.DetailsJson, Now = now }),
                token);
            return true;
        }, cancellationToken);

    /// <summary>The evaluation of one job, with its values; null when it has none (yet).</summary>
    public async Task<EvaluationRecord?> GetAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var found = await ListAsync(new EvaluationFilter(), jobId, cancellationToken);
        return found.Count == 0 ? null : found[0];
    }

    /// <summary>Evaluations matching <paramref name="filter"/>, oldest first (the order trends read them in), with their values.</summary>
    public Task<IReadOnlyList<EvaluationRecord>> ListAsync(EvaluationFilter filter, CancellationToken cancellationToken) =>
        ListAsync(filter, null, cancellationToken);

    private Task<IReadOnlyList<EvaluationRecord>> ListAsync(EvaluationFilter filter, Guid? jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<EvaluationRecord>>(async (connection, transaction, token) =>
        {
            // Only the filters given become conditions: a typed query per shape, nothing left to NULL tricks.
            var conditions = new List<string>();
            var parameters = new DynamicParameters();
            parameters.Add("Limit", filter.Limit);
            if (jobId is { } id) { conditions.Add("job_id = @JobId"); parameters.Add("JobId", id); }
            if (filter.CheckpointSha256 is { } sha) { conditions.Add("checkpoint_sha256 LIKE @Sha"); parameters.Add("Sha", sha.ToLowerInvariant() + "%"); }
            if (filter.CheckpointPathPrefix is { } path) { conditions.Add(@"checkpoint_path LIKE @Path ESCAPE '\'"); parameters.Add("Path", Escape(path) + "%"); }
            if (filter.ScheduleName is { } schedule) { conditions.Add("schedule_name = @ScheduleName"); parameters.Add("ScheduleName", schedule); }
            if (filter.Protocol is { } protocol) { conditions.Add("protocol = @Protocol"); parameters.Add("Protocol", protocol); }
            if (filter.DatasetName is { } dataset) { conditions.Add("dataset_name = @DatasetName"); parameters.Add("DatasetName", dataset); }
            var where = conditions.Count == 0 ? "" : "WHERE " + string.Join(" AND ", conditions);
            var evaluations = (await connection.QueryAsync<EvaluationRecord>(database.Command($"""
                SELECT * FROM (
                    SELECT job_id, checkpoint_sha256, checkpoint_path, model_kind, dataset, dataset_name, preprocessing, protocol,
                           image_count, schedule_name, training_epoch, training_iteration, created_at
                    FROM evaluations
                    {where}
                    ORDER BY created_at DESC
                    LIMIT @Limit) newest
                ORDER BY created_at
                """, parameters, transaction, token))).ToList();
            if (evaluations.Count == 0) return evaluations;
            var values = await connection.QueryAsync<(Guid JobId, string Name, double Value)>(database.Command("""
                SELECT m.job_id, m.metric_name, m.metric_value FROM metrics m JOIN evaluations e ON e.job_id = m.job_id
                WHERE ANY_OF_JOBS
                """.Replace("ANY_OF_JOBS", database.IsPostgres ? "m.job_id = ANY(@Jobs)" : "m.job_id IN @Jobs", StringComparison.Ordinal),
                new { Jobs = database.JobIdList(evaluations.Select(e => e.JobId)) }, transaction, token));
            var byJob = values.GroupBy(v => v.JobId).ToDictionary(g => g.Key, g => (IReadOnlyDictionary<string, double>)g.ToDictionary(v => v.Name, v => v.Value));
            foreach (var evaluation in evaluations)
                evaluation.Metrics = byJob.TryGetValue(evaluation.JobId, out var metrics) ? metrics : new Dictionary<string, double>();
            return evaluations;
        }, cancellationToken);

    private static string Escape(string prefix) => prefix.Replace(@"\", @"\\", StringComparison.Ordinal)
        .Replace("%", @"\%", StringComparison.Ordinal).Replace("_", @"\_", StringComparison.Ordinal);
}
