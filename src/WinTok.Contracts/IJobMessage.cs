namespace WinTok.Contracts;

/// <summary>
/// A unit of work of one job, addressed by the job and its partition; every queue message is one. Messages carry
/// addresses, never the work itself: the job's spec and each partition's inputs live in the results database, so a
/// message is small, and a redelivered or retried one reads the same facts as the first.
/// </summary>
public interface IJobMessage
{
    /// <summary>The job this work belongs to (the <c>jobs.id</c> row of the results database).</summary>
    Guid JobId { get; }

    /// <summary>The partition (input shard) index within the job, from 0.</summary>
    int Partition { get; }

    /// <summary>Which publication this is: 1 for the first submission, incremented by each <c>jobs retry</c>.</summary>
    int Attempt { get; }
}
