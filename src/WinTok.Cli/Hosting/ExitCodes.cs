namespace WinTok.Cli.Hosting;

/// <summary>Exit codes of every verb: scripts and the Helm hooks branch on them.</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The job failed or was cancelled, or the verb could not do what it was asked.</summary>
    public const int Failed = 1;

    /// <summary>Bad arguments or settings: nothing was started.</summary>
    public const int BadArguments = 2;

    /// <summary>Prints one line naming the problem (no stack trace: it is the user's to fix) and returns <see cref="BadArguments"/>.</summary>
    public static int Usage(string problem)
    {
        Console.Error.WriteLine($"wintok: {problem}");
        return BadArguments;
    }
}
