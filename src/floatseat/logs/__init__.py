"""Reading Atlassian access logs: Tomcat patterns, known formats, files, generation."""
