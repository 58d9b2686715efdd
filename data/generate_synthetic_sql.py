"""Generate sqltune's own text-to-SQL data set in the columns of gretelai/synthetic_text_to_sql.

Our machines and CI cannot reach the Hugging Face hub, so the project ships a small training set made
here instead. Every row is a question, a gretel-style context (`CREATE TABLE ...; INSERT INTO ...;`)
and a gold query that has been executed on that context in a fresh in-memory SQLite database: rows
whose query fails, or whose read query returns nothing, are thrown away and drawn again, so training
never teaches broken SQL or empty answers.

Standard library only, and deterministic: the same arguments give byte-identical files.

    uv run python data/generate_synthetic_sql.py --out data/synthetic_text_to_sql --train 2000 --test 200 --seed 42
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

# --------------------------------------------------------------------------------------------------
# Schema vocabulary: columns and tables are data; the constructors below only fill in defaults.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    kind: str  # "id", "label", "category", "measure", "date" or "fk"
    phrase: str = ""  # how a question names the column, e.g. "visit cost"
    pool: tuple = ()  # label/category values, or (low, high) for measures and dates (years)
    filter_phrase: str = ""  # category only: English after a plural noun, e.g. "in {v}"
    additive: bool = True  # measure only: whether a SUM of it means something (not for ages, ratings)
    references: str = ""  # fk only: the parent table


def ident(name: str, phrase: str) -> Column:
    return Column(name, "INT", "id", phrase)


def label(name: str, pool: tuple, phrase: str = "name", sql_type: str = "VARCHAR(50)") -> Column:
    return Column(name, sql_type, "label", phrase, pool)


def category(name: str, pool: tuple, phrase: str, filter_phrase: str = "",
             sql_type: str = "VARCHAR(30)") -> Column:
    # The default filter reads "with <phrase> 'value'", which fits any column.
    return Column(name, sql_type, "category", phrase, pool,
                  filter_phrase or f"with {phrase} '{{v}}'")


def integer(name: str, low: int, high: int, phrase: str, additive: bool = True) -> Column:
    return Column(name, "INT", "measure", phrase, (low, high), additive=additive)


def decimal(name: str, low: float, high: float, phrase: str, additive: bool = True,
            sql_type: str = "DECIMAL(10,2)") -> Column:
    return Column(name, sql_type, "measure", phrase, (float(low), float(high)), additive=additive)


def date(name: str, first_year: int, last_year: int, phrase: str) -> Column:
    return Column(name, "DATE", "date", phrase, (first_year, last_year))


def foreign_key(name: str, parent: str) -> Column:
    # "patient_id" reads as "patient ID" in questions.
    return Column(name, "INT", "fk", name.replace("_id", " ID").replace("_", " "), references=parent)


@dataclass(frozen=True)
class Table:
    name: str
    singular: str
    plural: str
    columns: tuple[Column, ...]
    parent: str = ""  # the table a foreign key of this one points to, for joins


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


# --------------------------------------------------------------------------------------------------
# Value pools and domains.
# --------------------------------------------------------------------------------------------------

FIRST_NAMES = ("James", "Maria", "Wei", "Aisha", "Carlos", "Emma", "Liam", "Sofia", "Noah", "Priya",
               "Omar", "Hannah", "Lucas", "Yuki", "Fatima", "Daniel", "Chloe", "Mateo", "Grace", "Ravi")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Khan", "Johnson", "Lopez", "Muller", "Rossi", "Kim", "Patel",
              "Brown", "Silva", "Nguyen", "Cohen", "Okafor", "Martin", "Tanaka", "Wilson", "Davis", "Ali")
PERSON_NAMES = tuple(f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES)

US_CITIES = ("New York", "Chicago", "Houston", "Seattle", "Boston", "Denver", "Miami")
COUNTRIES = ("USA", "Canada", "Germany", "India", "Brazil", "Japan", "Kenya")

DOMAINS: tuple[Domain, ...] = (
    Domain("healthcare", "Patient demographics, hospital visits and the cost of care.", (
        Table("patients", "patient", "patients", (
            ident("patient_id", "patient ID"),
            label("name", PERSON_NAMES),
            integer("age", 18, 90, "age", additive=False),
            category("gender", ("Male", "Female"), "gender", "who are {v}", "VARCHAR(10)"),
            category("city", US_CITIES[:5], "city", "in {v}", "VARCHAR(50)"),
        )),
        Table("visits", "visit", "visits", (
            ident("visit_id", "visit ID"),
            foreign_key("patient_id", "patients"),
            category("department", ("Cardiology", "Oncology", "Pediatrics", "Neurology", "Emergency"),
                     "department", "in the {v} department"),
            date("visit_date", 2021, 2023, "visit date"),
            decimal("cost", 80, 4000, "visit cost"),
        ), parent="patients"),
    )),
    Domain("retail", "Stores, product categories and the revenue of individual sales.", (
        Table("stores", "store", "stores", (
            ident("store_id", "store ID"),
            label("store_name", ("Downtown Market", "Riverside Mall", "Oak Plaza", "Harbor Point",
                                 "Sunset Outlet", "Maple Center", "Lakeside Shop", "Pine Street Store")),
            category("city", US_CITIES, "city", "in {v}", "VARCHAR(50)"),
            integer("floor_area", 400, 5000, "floor area"),
        )),
        Table("sales", "sale", "sales", (
            ident("sale_id", "sale ID"),
            foreign_key("store_id", "stores"),
            category("product_category", ("Electronics", "Clothing", "Groceries", "Toys", "Furniture"),
                     "product category", "in the '{v}' category"),
            date("sale_date", 2022, 2023, "sale date"),
            integer("quantity", 1, 40, "quantity"),
            decimal("revenue", 15, 2500, "revenue"),
        ), parent="stores"),
    )),
    Domain("logistics", "Warehouses, carriers and the shipments moving between them.", (
        Table("warehouses", "warehouse", "warehouses", (
            ident("warehouse_id", "warehouse ID"),
            label("warehouse_name", ("Central Hub", "North Depot", "East Gate", "West Yard",
                                     "South Terminal", "Harbor Storage", "Airport Facility")),
            category("country", COUNTRIES[:5], "country", "in {v}", "VARCHAR(50)"),
            integer("capacity", 1000, 50000, "capacity"),
        )),
        Table("shipments", "shipment", "shipments", (
            ident("shipment_id", "shipment ID"),
            foreign_key("warehouse_id", "warehouses"),
            category("carrier", ("DHL", "FedEx", "UPS", "Maersk"), "carrier", "handled by {v}"),
            category("status", ("Delivered", "In Transit", "Delayed"), "status",
                     "with status '{v}'", "VARCHAR(20)"),
            date("ship_date", 2022, 2023, "ship date"),
            decimal("weight_kg", 5, 1200, "weight in kilograms"),
        ), parent="warehouses"),
    )),
    Domain("education", "Students, their majors and the scores they earn in courses.", (
        Table("students", "student", "students", (
            ident("student_id", "student ID"),
            label("name", PERSON_NAMES),
            category("major", ("Biology", "History", "Physics", "Economics", "Computer Science"),
                     "major", "majoring in {v}"),
            integer("enrollment_year", 2018, 2023, "enrollment year", additive=False),
            decimal("gpa", 2.0, 4.0, "GPA", additive=False, sql_type="DECIMAL(3,2)"),
        )),
        Table("course_grades", "course grade", "course grades", (
            ident("grade_id", "grade ID"),
            foreign_key("student_id", "students"),
            category("course", ("Calculus", "Statistics", "World History", "Chemistry", "Programming"),
                     "course", "in the {v} course", "VARCHAR(50)"),
            category("semester", ("Fall", "Spring", "Summer"), "semester", "from the {v} semester",
                     "VARCHAR(10)"),
            integer("score", 40, 100, "score", additive=False),
        ), parent="students"),
    )),
    Domain("finance", "Bank customers, their accounts and the transactions they make.", (
        Table("customers", "customer", "customers", (
            ident("customer_id", "customer ID"),
            label("name", PERSON_NAMES),
            category("country", COUNTRIES, "country", "from {v}", "VARCHAR(50)"),
            category("risk_level", ("Low", "Medium", "High"), "risk level",
                     "with a '{v}' risk level", "VARCHAR(10)"),
        )),
        Table("transactions", "transaction", "transactions", (
            ident("transaction_id", "transaction ID"),
            foreign_key("customer_id", "customers"),
            category("transaction_type", ("Deposit", "Withdrawal", "Transfer", "Payment"),
                     "transaction type", "of type '{v}'", "VARCHAR(20)"),
            date("transaction_date", 2022, 2023, "transaction date"),
            decimal("amount", 10, 9000, "amount"),
        ), parent="customers"),
        Table("loans", "loan", "loans", (
            ident("loan_id", "loan ID"),
            label("borrower", PERSON_NAMES, "borrower"),
            category("loan_type", ("Mortgage", "Auto", "Personal", "Student"), "loan type",
                     "of type '{v}'", "VARCHAR(20)"),
            decimal("principal", 1000, 400000, "principal", sql_type="DECIMAL(12,2)"),
            decimal("interest_rate", 2.5, 12.0, "interest rate", additive=False,
                    sql_type="DECIMAL(4,2)"),
        )),
    )),
    Domain("energy", "Power plants by energy source and the electricity they generate.", (
        Table("power_plants", "power plant", "power plants", (
            ident("plant_id", "plant ID"),
            label("plant_name", ("Sunridge", "Windhaven", "Blue River", "Coal Creek", "Green Valley",
                                 "Stormpeak", "Solara", "Hydro North")),
            category("energy_source", ("Solar", "Wind", "Hydro", "Coal", "Nuclear"), "energy source",
                     "powered by {v}", "VARCHAR(20)"),
            category("country", ("USA", "Germany", "China", "India", "Spain"), "country", "in {v}",
                     "VARCHAR(50)"),
            decimal("capacity_mw", 20, 3000, "capacity in MW"),
        )),
        Table("generation_records", "generation record", "generation records", (
            ident("record_id", "record ID"),
            foreign_key("plant_id", "power_plants"),
            date("record_date", 2022, 2023, "record date"),
            decimal("output_mwh", 100, 90000, "output in MWh"),
        ), parent="power_plants"),
    )),
    Domain("sports", "Teams, leagues and the players on each roster.", (
        Table("teams", "team", "teams", (
            ident("team_id", "team ID"),
            label("team_name", ("Eagles", "Sharks", "Titans", "Wolves", "Falcons", "Rangers",
                                "Comets", "Bulls")),
            category("city", US_CITIES, "city", "based in {v}", "VARCHAR(50)"),
            category("league", ("East", "West", "Central"), "league", "in the {v} league",
                     "VARCHAR(20)"),
            integer("wins", 2, 60, "number of wins"),
        )),
        Table("players", "player", "players", (
            ident("player_id", "player ID"),
            foreign_key("team_id", "teams"),
            label("name", PERSON_NAMES),
            category("position", ("Forward", "Midfielder", "Defender", "Goalkeeper"), "position",
                     "who play as {v}", "VARCHAR(20)"),
            integer("age", 18, 38, "age", additive=False),
            decimal("salary", 40000, 900000, "salary"),
        ), parent="teams"),
    )),
    Domain("agriculture", "Farms, the crops they grow and the size of each harvest.", (
        Table("farms", "farm", "farms", (
            ident("farm_id", "farm ID"),
            label("farm_name", ("Green Acres", "Sunny Fields", "Willow Farm", "Red Barn", "Golden Plains",
                                "Hilltop Ranch", "River Bend")),
            category("region", ("North", "South", "East", "West"), "region", "in the {v} region",
                     "VARCHAR(20)"),
            decimal("area_hectares", 5, 900, "area in hectares"),
        )),
        Table("harvests", "harvest", "harvests", (
            ident("harvest_id", "harvest ID"),
            foreign_key("farm_id", "farms"),
            category("crop", ("Wheat", "Corn", "Rice", "Soybeans", "Barley"), "crop", "of {v}"),
            date("harvest_date", 2021, 2023, "harvest date"),
            decimal("yield_tons", 1, 500, "yield in tons"),
        ), parent="farms"),
    )),
    Domain("media", "Authors and the articles they publish, with readership figures.", (
        Table("authors", "author", "authors", (
            ident("author_id", "author ID"),
            label("name", PERSON_NAMES),
            category("country", COUNTRIES, "country", "from {v}", "VARCHAR(50)"),
        )),
        Table("articles", "article", "articles", (
            ident("article_id", "article ID"),
            foreign_key("author_id", "authors"),
            label("title", ("Climate Talks Stall", "Markets Rally Again", "New Stadium Opens",
                            "Election Night Recap", "Tech Layoffs Grow", "City Budget Approved",
                            "Local Team Wins Title", "Vaccine Trial Results", "Housing Costs Climb",
                            "Museum Reopens Doors"), "title", "VARCHAR(100)"),
            category("category", ("Politics", "Sports", "Business", "Science", "Culture"), "category",
                     "in the '{v}' category"),
            date("publish_date", 2022, 2023, "publish date"),
            integer("views", 100, 90000, "view count"),
        ), parent="authors"),
    )),
    Domain("real estate", "Agents and the property listings they manage.", (
        Table("agents", "agent", "agents", (
            ident("agent_id", "agent ID"),
            label("name", PERSON_NAMES),
            category("office", ("Downtown", "Uptown", "Suburbs"), "office", "at the {v} office",
                     "VARCHAR(20)"),
        )),
        Table("properties", "property", "properties", (
            ident("property_id", "property ID"),
            foreign_key("agent_id", "agents"),
            category("property_type", ("Condo", "House", "Townhouse", "Apartment"), "property type",
                     "of type '{v}'", "VARCHAR(20)"),
            integer("bedrooms", 1, 6, "number of bedrooms", additive=False),
            date("listing_date", 2022, 2023, "listing date"),
            decimal("price", 90000, 1500000, "price", sql_type="DECIMAL(12,2)"),
        ), parent="agents"),
    )),
    Domain("aviation", "Airlines and the flights they operate, with passenger and delay data.", (
        Table("airlines", "airline", "airlines", (
            ident("airline_id", "airline ID"),
            label("airline_name", ("SkyWays", "AeroJet", "BlueWing", "NorthAir", "SunFly", "Pacifica",
                                   "Atlas Air")),
            category("country", COUNTRIES, "country", "from {v}", "VARCHAR(50)"),
            integer("fleet_size", 8, 400, "fleet size"),
        )),
        Table("flights", "flight", "flights", (
            ident("flight_id", "flight ID"),
            foreign_key("airline_id", "airlines"),
            category("origin", ("JFK", "LAX", "ORD", "ATL", "SEA"), "origin airport", "departing from {v}",
                     "VARCHAR(10)"),
            date("flight_date", 2023, 2023, "flight date"),
            integer("passengers", 40, 380, "number of passengers"),
            integer("delay_minutes", 0, 240, "delay in minutes"),
        ), parent="airlines"),
    )),
    Domain("human resources", "Departments, employees, job titles and salaries.", (
        Table("departments", "department", "departments", (
            ident("department_id", "department ID"),
            label("department_name", ("Engineering", "Marketing", "Sales", "Finance", "Legal",
                                      "Operations", "Support"), "department name"),
            category("location", US_CITIES[:4], "location", "located in {v}", "VARCHAR(50)"),
            decimal("budget", 50000, 2000000, "budget", sql_type="DECIMAL(12,2)"),
        )),
        Table("employees", "employee", "employees", (
            ident("employee_id", "employee ID"),
            foreign_key("department_id", "departments"),
            label("name", PERSON_NAMES),
            category("job_title", ("Analyst", "Manager", "Engineer", "Specialist"), "job title",
                     "working as {v}", "VARCHAR(50)"),
            date("hire_date", 2015, 2023, "hire date"),
            decimal("salary", 38000, 190000, "salary"),
        ), parent="departments"),
    )),
    Domain("hospitality", "Hotels, their star ratings and the bookings guests make.", (
        Table("hotels", "hotel", "hotels", (
            ident("hotel_id", "hotel ID"),
            label("hotel_name", ("Grand Palace", "Seaside Inn", "Mountain Lodge", "City Suites",
                                 "Royal Garden", "Harbor View", "Old Town Hotel")),
            category("city", ("Paris", "Rome", "Tokyo", "Lisbon", "Cairo"), "city", "in {v}", "VARCHAR(50)"),
            integer("star_rating", 2, 5, "star rating", additive=False),
        )),
        Table("bookings", "booking", "bookings", (
            ident("booking_id", "booking ID"),
            foreign_key("hotel_id", "hotels"),
            category("room_type", ("Single", "Double", "Suite"), "room type", "for a {v} room",
                     "VARCHAR(20)"),
            date("check_in", 2023, 2023, "check-in date"),
            integer("nights", 1, 14, "number of nights"),
            decimal("total_price", 60, 4000, "total price"),
        ), parent="hotels"),
    )),
    Domain("manufacturing", "Factories, product lines and production output and quality.", (
        Table("factories", "factory", "factories", (
            ident("factory_id", "factory ID"),
            label("factory_name", ("Plant Alpha", "Plant Beta", "Ironworks", "Delta Assembly",
                                   "Northside Mill", "Forge One")),
            category("country", ("USA", "Mexico", "China", "Germany", "Vietnam"), "country", "in {v}",
                     "VARCHAR(50)"),
            integer("workers", 40, 2500, "number of workers"),
        )),
        Table("production_runs", "production run", "production runs", (
            ident("run_id", "run ID"),
            foreign_key("factory_id", "factories"),
            category("product_line", ("Engines", "Batteries", "Textiles", "Chips"), "product line",
                     "for the {v} product line"),
            date("run_date", 2022, 2023, "run date"),
            integer("units_produced", 100, 20000, "units produced"),
            decimal("defect_rate", 0.1, 9.9, "defect rate", additive=False, sql_type="DECIMAL(5,2)"),
        ), parent="factories"),
    )),
    Domain("telecommunications", "Mobile subscribers, their plans, fees and data usage.", (
        Table("subscribers", "subscriber", "subscribers", (
            ident("subscriber_id", "subscriber ID"),
            label("name", PERSON_NAMES),
            category("plan_type", ("Prepaid", "Postpaid", "Family", "Business"), "plan type",
                     "on the {v} plan", "VARCHAR(20)"),
            category("region", ("North", "South", "East", "West"), "region", "in the {v} region",
                     "VARCHAR(20)"),
            decimal("monthly_fee", 10, 120, "monthly fee"),
            decimal("data_usage_gb", 0.5, 80, "data usage in GB"),
        )),
    )),
    Domain("nonprofit", "Donors, the causes they support and the donations they give.", (
        Table("donors", "donor", "donors", (
            ident("donor_id", "donor ID"),
            label("name", PERSON_NAMES),
            category("country", COUNTRIES, "country", "from {v}", "VARCHAR(50)"),
            category("donor_type", ("Individual", "Corporate", "Foundation"), "donor type",
                     "of type '{v}'", "VARCHAR(20)"),
        )),
        Table("donations", "donation", "donations", (
            ident("donation_id", "donation ID"),
            foreign_key("donor_id", "donors"),
            category("cause", ("Education", "Health", "Environment", "Disaster Relief"), "cause",
                     "for {v}"),
            date("donation_date", 2021, 2023, "donation date"),
            decimal("amount", 10, 20000, "donation amount"),
        ), parent="donors"),
    )),
    Domain("public transportation", "Transit routes, vehicles and daily ridership.", (
        Table("routes", "route", "routes", (
            ident("route_id", "route ID"),
            label("route_name", ("Red Line", "Blue Line", "Green Line", "Airport Express", "Crosstown",
                                 "Harbor Loop", "Night Owl"), "route name"),
            category("mode", ("Bus", "Subway", "Tram", "Ferry"), "mode", "operated by {v}",
                     "VARCHAR(20)"),
            decimal("length_km", 3, 60, "length in kilometers", sql_type="DECIMAL(5,2)"),
            decimal("fare", 1, 8, "fare", additive=False, sql_type="DECIMAL(4,2)"),
        )),
        Table("ridership", "ridership record", "ridership records", (
            ident("record_id", "record ID"),
            foreign_key("route_id", "routes"),
            date("ride_date", 2023, 2023, "ride date"),
            integer("riders", 150, 30000, "number of riders"),
        ), parent="routes"),
    )),
)

# Domains only the test split draws from, so it measures schemas and subjects training never showed.
TEST_DOMAINS: tuple[Domain, ...] = (
    Domain("space exploration", "Astronauts, the agencies they fly for and their missions.", (
        Table("astronauts", "astronaut", "astronauts", (
            ident("astronaut_id", "astronaut ID"),
            label("name", PERSON_NAMES),
            category("agency", ("NASA", "ESA", "JAXA", "ISRO", "CSA"), "agency", "from {v}", "VARCHAR(20)"),
            integer("age", 28, 70, "age", additive=False),
        )),
        Table("missions", "mission", "missions", (
            ident("mission_id", "mission ID"),
            foreign_key("astronaut_id", "astronauts"),
            category("destination", ("ISS", "Moon", "Mars Orbit", "Low Earth Orbit"), "destination",
                     "bound for the {v}"),
            date("launch_date", 2015, 2023, "launch date"),
            integer("duration_days", 3, 400, "duration in days"),
        ), parent="astronauts"),
    )),
    Domain("social media", "Users, the posts they publish and the engagement those posts get.", (
        Table("users", "user", "users", (
            ident("user_id", "user ID"),
            label("username", ("sunny_day", "tech_guru", "foodie42", "travel_bug", "night_owl", "green_thumb",
                               "code_ninja"), "username"),
            category("country", COUNTRIES, "country", "from {v}", "VARCHAR(50)"),
            integer("followers", 10, 90000, "number of followers"),
        )),
        Table("posts", "post", "posts", (
            ident("post_id", "post ID"),
            foreign_key("user_id", "users"),
            category("post_type", ("Photo", "Video", "Text", "Link"), "post type", "of type '{v}'",
                     "VARCHAR(20)"),
            date("post_date", 2022, 2023, "post date"),
            integer("likes", 0, 5000, "number of likes"),
        ), parent="users"),
    )),
    Domain("fitness", "Gym members, their membership types and the workouts they log.", (
        Table("members", "member", "members", (
            ident("member_id", "member ID"),
            label("name", PERSON_NAMES),
            category("membership_type", ("Basic", "Premium", "Student"), "membership type",
                     "with a '{v}' membership", "VARCHAR(20)"),
            integer("age", 16, 75, "age", additive=False),
        )),
        Table("workouts", "workout", "workouts", (
            ident("workout_id", "workout ID"),
            foreign_key("member_id", "members"),
            category("workout_type", ("Yoga", "Cycling", "Running", "Strength"), "workout type",
                     "of type '{v}'", "VARCHAR(20)"),
            date("workout_date", 2022, 2023, "workout date"),
            integer("calories", 80, 1200, "calories burned"),
        ), parent="members"),
    )),
)

SQL_COMPLEXITY_DESCRIPTIONS = {
    "basic SQL": "basic SQL with a simple select statement",
    "aggregation": "aggregation functions (COUNT, SUM, AVG, MIN, MAX, etc.), and HAVING clause",
    "single join": "only one join (specify inner, outer, cross)",
    "subqueries": "subqueries, including correlated and nested subqueries",
    "window functions": "window functions (e.g., ROW_NUMBER, LEAD, LAG, RANK, NTILE, PERCENT_RANK, etc.) "
                        "with partitioning and ordering",
}
SQL_TASK_TYPE_DESCRIPTIONS = {
    "analytics and reporting": "generating reports, dashboards, and analytical insights",
    "data retrieval": "basic data fetching queries",
    "data manipulation": "inserting, updating, or deleting records",
}

# English for each aggregate; SUM is only offered on additive measures.
AGGREGATE_WORDS = {"SUM": ("total", "combined"), "AVG": ("average", "mean"),
                   "MAX": ("highest", "maximum"), "MIN": ("lowest", "minimum")}
AGGREGATE_ALIAS_PREFIX = {"SUM": "total", "AVG": "avg", "MAX": "max", "MIN": "min"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")

# --------------------------------------------------------------------------------------------------
# Sample data: a table spec plus the rows drawn for it, rendered as a gretel-style context.
# --------------------------------------------------------------------------------------------------


@dataclass
class TableData:
    table: Table
    rows: list[dict]
    alias: str = ""  # set for joins

    def values(self, column: Column) -> list:
        return [row[column.name] for row in self.rows]

    def ref(self, column: Column) -> str:
        """The column as a query names it: qualified by the alias inside joins."""
        return f"{self.alias}.{column.name}" if self.alias else column.name


def draw_value(rng: random.Random, column: Column):
    if column.kind == "category":
        return rng.choice(column.pool)
    if column.kind == "measure":
        low, high = column.pool
        if isinstance(low, float):
            return round(rng.uniform(low, high), 2)
        return rng.randint(low, high)
    if column.kind == "date":
        first_year, last_year = column.pool
        return datetime.date(rng.randint(first_year, last_year), rng.randint(1, 12),
                             rng.randint(1, 28)).isoformat()
    raise ValueError(f"no random value for a {column.kind} column")


# A child table drawn without its parent still holds plausible foreign keys.
DETACHED_PARENT_IDS = (1, 2, 3, 4, 5)


# Gretel's tables hold 3.4 columns on average, ours 5-6: each row drops some of its table's descriptive columns (never
# keys or names), so contexts cost about what gretel's do and the model reads schemas of every width.
KEEP_DESCRIPTIVE_COLUMN = 0.6


def narrowed(rng: random.Random, table: Table) -> Table:
    kept = tuple(c for c in table.columns if c.kind in ("id", "label", "fk") or rng.random() < KEEP_DESCRIPTIVE_COLUMN)
    return replace(table, columns=kept)


def populate(rng: random.Random, table: Table, row_count: int,
             parent_ids: tuple[int, ...] = DETACHED_PARENT_IDS) -> TableData:
    table = narrowed(rng, table)
    # Labels are sampled without replacement so that a name picks out exactly one row.
    labels = {c.name: rng.sample(c.pool, row_count) for c in table.columns if c.kind == "label"}
    rows = []
    for index in range(row_count):
        row = {}
        for column in table.columns:
            if column.kind == "id":
                row[column.name] = index + 1
            elif column.kind == "label":
                row[column.name] = labels[column.name][index]
            elif column.kind == "fk":
                row[column.name] = rng.choice(parent_ids)
            else:
                row[column.name] = draw_value(rng, column)
        rows.append(row)
    return TableData(table, rows)


def sql_literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float):
        return f"{value:.2f}"  # gretel writes DECIMAL samples with their scale, e.g. 1250.00
    return str(value)


def render_table(data: TableData) -> str:
    columns = data.table.columns
    definition = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
    names = ", ".join(c.name for c in columns)
    tuples = ", ".join("(" + ", ".join(sql_literal(row[c.name]) for c in columns) + ")"
                       for row in data.rows)
    return (f"CREATE TABLE {data.table.name} ({definition}); "
            f"INSERT INTO {data.table.name} ({names}) VALUES {tuples};")


def render_context(tables: list[TableData]) -> str:
    return " ".join(render_table(t) for t in tables)


# --------------------------------------------------------------------------------------------------
# Small English and SQL helpers shared by the question shapes.
# --------------------------------------------------------------------------------------------------


def columns_of(table: Table, kind: str, additive_only: bool = False) -> list[Column]:
    return [c for c in table.columns if c.kind == kind and (c.additive or not additive_only)]


def pick_column(rng: random.Random, table: Table, kind: str, additive_only: bool = False,
                exclude: Column | None = None) -> Column | None:
    candidates = [c for c in columns_of(table, kind, additive_only) if c != exclude]
    return rng.choice(candidates) if candidates else None


def display_column(table: Table) -> Column:
    """What a question shows to name a row: its label, or its id where the table has none."""
    labels = columns_of(table, "label")
    return labels[0] if labels else columns_of(table, "id")[0]


def id_column(table: Table) -> Column:
    return columns_of(table, "id")[0]


def fk_column(child: Table) -> Column:
    return next(c for c in child.columns if c.kind == "fk" and c.references == child.parent)


def pluralize(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def plural_phrase(column: Column) -> str:
    # Pluralise the head noun, not the last word: "number of wins" -> "numbers of wins",
    # "weight in kilograms" -> "weights in kilograms".
    for joiner in (" of ", " in "):
        head, found, tail = column.phrase.partition(joiner)
        if found:
            return pluralize(head) + joiner + tail
    return pluralize(column.phrase)


def with_article(phrase: str) -> str:
    # "a unit", "a user": a leading "u" that sounds like "you" takes "a".
    vowel_sound = phrase[0].lower() in "aeiou" and not phrase.lower().startswith(("uni", "use", "usu"))
    return ("an " if vowel_sound else "a ") + phrase


def label_phrase_for(table: Table) -> str:
    """'name' alone is vague in joins: say 'patient name' there."""
    phrase = display_column(table).phrase
    return f"{table.singular} {phrase}" if phrase in ("name", "title") else phrase


def snake(text: str) -> str:
    return "_".join(text.lower().replace("-", " ").split())


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def round_step(value: float) -> float:
    """A 'nice' step for thresholds near value: two significant digits from 100 up (4567 -> 4500),
    5 for two-digit values, 1 for small integers, 0.5 for small decimals (a GPA above 3.5)."""
    digits = len(str(int(abs(value))))
    if digits >= 3:
        return float(10 ** (digits - 2))
    if abs(value) >= 10:
        return 5.0
    return 1.0 if isinstance(value, int) else 0.5


def threshold_below(value: float) -> float:
    """A round number strictly below value, so '> threshold' keeps the row holding value."""
    step = round_step(value)
    threshold = (value // step) * step
    return threshold - step if threshold >= value else threshold


def threshold_above(value: float) -> float:
    """A round number strictly above value, so '< threshold' keeps the row holding value."""
    step = round_step(value)
    return (value // step + 1) * step


def human_date(iso: str) -> str:
    day = datetime.date.fromisoformat(iso)
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def pick_aggregate(rng: random.Random, measure: Column,
                   allowed: tuple[str, ...] = tuple(AGGREGATE_WORDS)) -> tuple[str, str]:
    functions = [f for f in allowed if f != "SUM" or measure.additive]
    function = rng.choice(functions)
    return function, rng.choice(AGGREGATE_WORDS[function])


def aggregate_alias(function: str, measure: Column) -> str:
    return f"{AGGREGATE_ALIAS_PREFIX[function]}_{measure.name}"


def maybe_alias(rng: random.Random, expression: str, alias: str) -> str:
    # gretel writes aggregates both bare and with an alias; keep both styles.
    return f"{expression} AS {alias}" if rng.random() < 0.6 else expression


def choose_join_keyword(rng: random.Random) -> str:
    return rng.choice(("INNER JOIN", "JOIN"))


def assign_aliases(child: TableData, parent: TableData) -> None:
    child.alias = child.table.name[0]
    parent.alias = parent.table.name[0]
    if parent.alias == child.alias:
        parent.alias = parent.table.name[:2]


def join_clause(rng: random.Random, child: TableData, parent: TableData) -> str:
    fk = fk_column(child.table)
    parent_id = id_column(parent.table)
    return (f"FROM {child.table.name} {child.alias} {choose_join_keyword(rng)} {parent.table.name} "
            f"{parent.alias} ON {child.alias}.{fk.name} = {parent.alias}.{parent_id.name}")


@dataclass
class Filter:
    english: str  # follows a plural noun: "patients in Boston"
    sql: str  # a WHERE condition


# A column's own phrasing names it ("from Brazil" is always `country`); gretel's questions as often name the value
# alone ("players in 'Hockey'", "sales in 'Florida'"), and the column must be read from the sample rows. A model
# trained without such questions dropped conditions in 40 of its 90 wrong answers on the real rows, so a share of
# conditions name only the value.
VALUE_ONLY_SHARE = 0.4
VALUE_ONLY = ("in '{v}'", "for '{v}'", "marked '{v}'", "listed as '{v}'", "with '{v}'")


def category_filter(rng: random.Random, data: TableData,
                    exclude: Column | None = None) -> Filter | None:
    column = pick_column(rng, data.table, "category", exclude=exclude)
    if column is None:
        return None
    value = rng.choice(data.values(column))
    condition = f"{data.ref(column)} = {sql_literal(value)}"
    phrase = rng.choice(VALUE_ONLY) if rng.random() < VALUE_ONLY_SHARE else column.filter_phrase
    return Filter(phrase.format(v=value), condition)


RANGE_WORDS = {">": ("greater than", "above", "over", "more than"), "<": ("less than", "below", "under")}


def range_filter(rng: random.Random, data: TableData, exclude: Column | None = None) -> Filter | None:
    column = pick_column(rng, data.table, "measure", exclude=exclude)
    if column is None:
        return None
    operator = rng.choice((">", "<"))
    # Leave out the extreme on the far side so the filter usually drops at least one row.
    values = sorted(set(data.values(column)))
    candidates = (values[1:] if operator == ">" else values[:-1]) or values
    value = rng.choice(candidates)
    threshold = threshold_below(value) if operator == ">" else threshold_above(value)
    if threshold < 0:
        return None
    number = format_number(threshold)
    english = f"with {with_article(column.phrase)} {rng.choice(RANGE_WORDS[operator])} {number}"
    condition = f"{data.ref(column)} {operator} {number}"
    return Filter(english, condition)


def date_filter(rng: random.Random, data: TableData) -> Filter | None:
    column = pick_column(rng, data.table, "date")
    if column is None:
        return None
    day = datetime.date.fromisoformat(rng.choice(data.values(column)))
    ref = data.ref(column)
    mode = rng.choice(("year", "after", "before"))
    if mode == "year":
        condition = f"{ref} BETWEEN '{day.year}-01-01' AND '{day.year}-12-31'"
        english = rng.choice((f"with {with_article(column.phrase)} in {day.year}",
                              f"whose {column.phrase} falls in {day.year}"))
        return Filter(english, condition)
    # Shift the bound a few days past a real date so the row holding it still qualifies.
    shift = datetime.timedelta(days=rng.randint(1, 20))
    bound = (day - shift if mode == "after" else day + shift).isoformat()
    shown = rng.choice((f"'{bound}'", human_date(bound)))
    condition = f"{ref} {'>' if mode == 'after' else '<'} '{bound}'"
    english = f"with {with_article(column.phrase)} {mode} {shown}"
    return Filter(english, condition)


def any_filter(rng: random.Random, data: TableData, exclude: Column | None = None) -> Filter | None:
    builders = [lambda: category_filter(rng, data, exclude), lambda: range_filter(rng, data, exclude),
                lambda: date_filter(rng, data)]
    return rng.choice(builders)()


def where(filter_: Filter | None) -> str:
    return f" WHERE {filter_.sql}" if filter_ else ""


def noun_with(filter_: Filter | None, plural: str) -> str:
    return f"{plural} {filter_.english}" if filter_ else f"all {plural}"


def explain_filter(filter_: Filter | None) -> str:
    # The condition itself reads well in an explanation and cannot drift from the query.
    return f" where {filter_.sql}" if filter_ else ""


# --------------------------------------------------------------------------------------------------
# Question shapes. Each takes the drawn sample data and returns a Query, or None when the data does
# not suit it (the caller then draws again).
# --------------------------------------------------------------------------------------------------


@dataclass
class Query:
    prompt: str
    sql: str
    explanation: str
    # For ORDER BY ... LIMIT n: (the query without LIMIT, n, index of the sort column). A tie across
    # the cut makes the gold answer arbitrary, so such rows are dropped.
    tie_check: tuple[str, int, int] | None = None


def fill(rng: random.Random, templates: tuple[str, ...], **slots) -> str:
    return rng.choice(templates).format(**slots)


def select_by_filter(rng, data: TableData) -> Query | None:
    t = data.table
    filter_ = any_filter(rng, data)
    if filter_ is None:
        return None
    shown = display_column(t)
    measure = pick_column(rng, t, "measure")
    if rng.random() < 0.4:
        projection, what = "*", "all columns"
        prompt = fill(rng, ("List all {who}.", "Show all records of {who}.",
                            "Retrieve all records for {who}."),
                      who=noun_with(filter_, t.plural))
    else:
        columns = [shown] + ([measure] if measure and rng.random() < 0.5 else [])
        projection = ", ".join(c.name for c in columns)
        what = " and ".join(c.phrase for c in columns)
        prompt = fill(rng, ("What are the {what_plural} of {who}?", "List the {what} of {who}.",
                            "Show the {what} for {who}.", "Which {plural} are there {filter}? Give their {what}."),
                      what_plural=" and ".join(plural_phrase(c) for c in columns), what=what,
                      who=noun_with(filter_, t.plural), plural=t.plural, filter=filter_.english)
    return Query(prompt, f"SELECT {projection} FROM {t.name}{where(filter_)}",
                 f"This query retrieves {what} from the {t.name} table{explain_filter(filter_)}.")


def select_by_two_conditions(rng, data: TableData) -> Query | None:
    t = data.table
    first = category_filter(rng, data)
    second = range_filter(rng, data) if rng.random() < 0.6 else date_filter(rng, data)
    if first is None or second is None:
        return None
    shown = display_column(t)
    prompt = fill(rng, ("List the {what} of {plural} {a} {b}.", "Which {plural} {a} are there {b}?",
                        "Find {plural} {a} {b}."),
                  what=plural_phrase(shown), plural=t.plural, a=first.english, b=second.english)
    return Query(prompt, f"SELECT {shown.name} FROM {t.name} WHERE {first.sql} AND {second.sql}",
                 f"This query lists {plural_phrase(shown)} from {t.name} where {first.sql} and {second.sql}.")


def select_by_pattern(rng, data: TableData) -> Query | None:
    t = data.table
    labels = columns_of(t, "label")
    if not labels:
        return None
    column = labels[0]
    value = rng.choice(data.values(column))
    words = value.split(" ")
    if len(words) > 1 and rng.random() < 0.5:
        word = rng.choice(words)
        pattern, english = f"%{word}%", f"contains '{word}'"
    else:
        prefix = words[0][:rng.randint(2, 4)]
        pattern, english = f"{prefix}%", f"starts with '{prefix}'"
    prompt = fill(rng, ("Which {plural} have a {phrase} that {english}?", "List {plural} whose {phrase} {english}.",
                        "Find all {plural} where the {phrase} {english}."),
                  plural=t.plural, phrase=column.phrase, english=english)
    return Query(prompt, f"SELECT * FROM {t.name} WHERE {column.name} LIKE '{pattern}'",
                 f"This query finds rows of {t.name} whose {column.name} matches the pattern '{pattern}' "
                 f"using LIKE.")


def select_in_list(rng, data: TableData) -> Query | None:
    t = data.table
    column = pick_column(rng, t, "category")
    distinct = sorted(set(data.values(column))) if column else []
    if len(distinct) < 2:
        return None
    chosen = rng.sample(distinct, 2)
    shown = display_column(t)
    prompt = fill(rng, ("List the {plural} whose {phrase} is either '{a}' or '{b}'.",
                        "Show {plural} with {phrase} '{a}' or '{b}'.",
                        "Which {plural} have a {phrase} of {a} or {b}?"),
                  plural=t.plural, phrase=column.phrase, a=chosen[0], b=chosen[1])
    values = ", ".join(sql_literal(v) for v in chosen)
    return Query(prompt, f"SELECT {shown.name}, {column.name} FROM {t.name} WHERE {column.name} IN ({values})",
                 f"This query selects {t.plural} whose {column.name} is one of {values} using IN.")


def select_distinct(rng, data: TableData) -> Query | None:
    t = data.table
    column = pick_column(rng, t, "category")
    if column is None:
        return None
    filter_ = range_filter(rng, data) if rng.random() < 0.4 else None
    prompt = fill(rng, ("What are the distinct {things} of {who}?", "List the unique {things} of {who}.",
                        "Which {things} appear among {who}?"),
                  things=plural_phrase(column), who=noun_with(filter_, t.plural))
    return Query(prompt, f"SELECT DISTINCT {column.name} FROM {t.name}{where(filter_)}",
                 f"This query returns each distinct {column.name} in {t.name} once{explain_filter(filter_)}.")


def select_top_n(rng, data: TableData) -> Query | None:
    t = data.table
    measure = pick_column(rng, t, "measure")
    if measure is None or len(data.rows) < 3:
        return None
    n = rng.randint(1, min(3, len(data.rows) - 1))
    highest = rng.random() < 0.7
    extreme = "highest" if highest else "lowest"
    shown = display_column(t)
    if n == 1:
        prompt = fill(rng, ("Which {one} has the {extreme} {phrase}?", "Find the {one} with the {extreme} {phrase}.",
                            "What is the {label} of the {one} with the {extreme} {phrase}?"),
                      one=t.singular, extreme=extreme, phrase=measure.phrase, label=shown.phrase)
    else:
        prompt = fill(rng, ("What are the top {n} {plural} by {phrase}?" if highest else
                            "What are the bottom {n} {plural} by {phrase}?",
                            "List the {n} {plural} with the {extreme} {phrase}.",
                            "Show the {n} {plural} with the {extreme} {phrase_plural}."),
                      n=n, plural=t.plural, phrase=measure.phrase, extreme=extreme,
                      phrase_plural=plural_phrase(measure))
    base = f"SELECT {shown.name}, {measure.name} FROM {t.name} ORDER BY {measure.name} {'DESC' if highest else 'ASC'}"
    return Query(prompt, f"{base} LIMIT {n}",
                 f"This query sorts {t.name} by {measure.name} in {'descending' if highest else 'ascending'} "
                 f"order and keeps the first {f'{n} rows' if n > 1 else 'row'}.", (base, n, 1))


def scalar_aggregate(rng, data: TableData) -> Query | None:
    t = data.table
    measure = pick_column(rng, t, "measure")
    if measure is None:
        return None
    function, word = pick_aggregate(rng, measure)
    filter_ = any_filter(rng, data, exclude=measure) if rng.random() < 0.75 else None
    prompt = fill(rng, ("What is the {word} {phrase} of {who}?", "Find the {word} {phrase} for {who}.",
                        "Calculate the {word} {phrase} across {who}.",
                        "What was the {word} {phrase} among {who}?"),
                  word=word, phrase=measure.phrase, who=noun_with(filter_, t.plural))
    expression = maybe_alias(rng, f"{function}({measure.name})", aggregate_alias(function, measure))
    return Query(prompt, f"SELECT {expression} FROM {t.name}{where(filter_)}",
                 f"This query calculates the {word} {measure.phrase} with {function}({measure.name}) "
                 f"over the {t.name} table{explain_filter(filter_)}.")


def count_rows(rng, data: TableData) -> Query | None:
    t = data.table
    filter_ = any_filter(rng, data)
    if filter_ is None:
        return None
    prompt = fill(rng, ("How many {plural} are there {filter}?", "Count the number of {plural} {filter}.",
                        "What is the number of {plural} {filter}?", "How many {plural} {filter} are recorded?"),
                  plural=t.plural, filter=filter_.english)
    expression = maybe_alias(rng, "COUNT(*)", f"{snake(t.singular)}_count")
    return Query(prompt, f"SELECT {expression} FROM {t.name}{where(filter_)}",
                 f"This query counts the rows of {t.name}{explain_filter(filter_)}.")


def grouped_aggregate(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    measure = pick_column(rng, t, "measure")
    if group is None or measure is None:
        return None
    function, word = pick_aggregate(rng, measure)
    filter_ = (date_filter(rng, data) or range_filter(rng, data, exclude=measure)) if rng.random() < 0.3 else None
    prompt = fill(rng, ("What is the {word} {phrase} of {who} for each {group}?",
                        "Show the {word} {phrase} per {group} for {who}.",
                        "For each {group}, what is the {word} {phrase} of {who}?",
                        "Calculate the {word} {phrase} of {who}, grouped by {group}."),
                  word=word, phrase=measure.phrase, who=noun_with(filter_, t.plural), group=group.phrase)
    expression = maybe_alias(rng, f"{function}({measure.name})", aggregate_alias(function, measure))
    return Query(prompt, f"SELECT {group.name}, {expression} FROM {t.name}{where(filter_)} GROUP BY {group.name}",
                 f"This query groups {t.name} by {group.name} and computes {function}({measure.name}) "
                 f"for each group{explain_filter(filter_)}.")


def grouped_count(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    if group is None:
        return None
    prompt = fill(rng, ("How many {plural} are there for each {group}?", "Count the {plural} per {group}.",
                        "What is the number of {plural} in each {group}?",
                        "Show the {group} and the number of {plural} for each."),
                  plural=t.plural, group=group.phrase)
    expression = maybe_alias(rng, "COUNT(*)", f"{snake(t.singular)}_count")
    return Query(prompt, f"SELECT {group.name}, {expression} FROM {t.name} GROUP BY {group.name}",
                 f"This query groups {t.name} by {group.name} and counts the rows in each group.")


def group_totals(data: TableData, group: Column, measure: Column | None) -> dict:
    """Per-group SUM of measure (or row count when measure is None), in first-seen order."""
    totals: dict = {}
    for row in data.rows:
        totals[row[group.name]] = totals.get(row[group.name], 0) + (row[measure.name] if measure else 1)
    return totals


def grouped_having(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    if group is None:
        return None
    measure = pick_column(rng, t, "measure", additive_only=True) if rng.random() < 0.5 else None
    totals = group_totals(data, group, measure)
    if measure is None:
        bound = max(totals.values()) - 1
        if bound < 1:
            return None
        prompt = fill(rng, ("Which {groups} have more than {k} {plural}?", "List the {groups} with over {k} {plural}.",
                            "Show each {group} that has more than {k} {plural}, with its count."),
                      groups=plural_phrase(group), group=group.phrase, k=bound,
                      plural=t.plural if bound > 1 else t.singular)
        sql = f"SELECT {group.name}, COUNT(*) FROM {t.name} GROUP BY {group.name} HAVING COUNT(*) > {bound}"
        return Query(prompt, sql, f"This query counts {t.plural} per {group.name} and keeps the groups "
                                  f"with more than {bound} row{'s' if bound > 1 else ''} using HAVING.")
    number = format_number(threshold_below(max(totals.values())))
    prompt = fill(rng, ("Which {groups} have a total {phrase} above {x}?",
                        "List each {group} whose combined {phrase} exceeds {x}.",
                        "Show the {groups} with a total {phrase} greater than {x}."),
                  groups=plural_phrase(group), group=group.phrase, phrase=measure.phrase, x=number)
    alias = aggregate_alias("SUM", measure)
    sql = (f"SELECT {group.name}, SUM({measure.name}) AS {alias} FROM {t.name} GROUP BY {group.name} "
           f"HAVING SUM({measure.name}) > {number}")
    return Query(prompt, sql, f"This query sums {measure.name} per {group.name} and keeps the groups "
                              f"whose total exceeds {number} using HAVING.")


def grouped_top(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    measure = pick_column(rng, t, "measure")
    if group is None or measure is None or len(set(data.values(group))) < 2:
        return None
    # Only SUM and AVG: "the highest maximum salary" does not read as English.
    function, word = pick_aggregate(rng, measure, allowed=("SUM", "AVG"))
    highest = rng.random() < 0.75
    extreme = "highest" if highest else "lowest"
    prompt = fill(rng, ("Which {group} has the {extreme} {word} {phrase}?",
                        "Find the {group} with the {extreme} {word} {phrase} among {plural}.",
                        "What {group} has the {extreme} {word} {phrase}?"),
                  group=group.phrase, extreme=extreme, word=word, phrase=measure.phrase, plural=t.plural)
    alias = aggregate_alias(function, measure)
    base = (f"SELECT {group.name}, {function}({measure.name}) AS {alias} FROM {t.name} GROUP BY {group.name} "
            f"ORDER BY {alias} {'DESC' if highest else 'ASC'}")
    return Query(prompt, f"{base} LIMIT 1",
                 f"This query computes {function}({measure.name}) per {group.name}, orders the groups by it "
                 f"and returns the {'top' if highest else 'bottom'} one.", (base, 1, 1))


def join_list(rng, child: TableData, parent: TableData) -> Query | None:
    c, p = child.table, parent.table
    parent_label = display_column(p)
    detail = pick_column(rng, c, "measure") or pick_column(rng, c, "date")
    filter_ = (any_filter(rng, child, exclude=detail) if rng.random() < 0.5 else category_filter(rng, parent))
    if detail is None or filter_ is None:
        return None
    on_parent = filter_.sql.startswith(parent.alias + ".")
    who = f"{c.plural} of {p.plural} {filter_.english}" if on_parent else f"{c.plural} {filter_.english}"
    prompt = fill(rng, ("List the {label} and {detail} for {who}.",
                        "For {who}, show the {label} and the {detail}.",
                        "What are the {detail_plural} of {who}, along with the {label}?"),
                  label=label_phrase_for(p), detail=detail.phrase, detail_plural=plural_phrase(detail), who=who)
    sql = (f"SELECT {parent.ref(parent_label)}, {child.ref(detail)} {join_clause(rng, child, parent)} "
           f"WHERE {filter_.sql}")
    return Query(prompt, sql, f"This query joins {c.name} with {p.name} on {fk_column(c).name} and lists "
                              f"{parent_label.name} with {detail.name}{explain_filter(filter_)}.")


def join_filtered_aggregate(rng, child: TableData, parent: TableData) -> Query | None:
    c, p = child.table, parent.table
    filter_ = category_filter(rng, parent)
    measure = pick_column(rng, c, "measure")
    if filter_ is None or measure is None:
        return None
    if rng.random() < 0.3:
        prompt = fill(rng, ("How many {children} belong to {parents} {filter}?",
                            "Count the {children} of {parents} {filter}."),
                      children=c.plural, parents=p.plural, filter=filter_.english)
        expression, what = "COUNT(*)", f"counts the {c.plural}"
    else:
        function, word = pick_aggregate(rng, measure)
        prompt = fill(rng, ("What is the {word} {phrase} of {children} for {parents} {filter}?",
                            "Find the {word} {phrase} for {parents} {filter}.",
                            "Calculate the {word} {phrase} across the {children} of {parents} {filter}."),
                      word=word, phrase=measure.phrase, children=c.plural, parents=p.plural, filter=filter_.english)
        expression, what = f"{function}({child.ref(measure)})", f"computes {function}({measure.name})"
    sql = f"SELECT {expression} {join_clause(rng, child, parent)} WHERE {filter_.sql}"
    return Query(prompt, sql, f"This query joins {c.name} with {p.name} on {fk_column(c).name} and {what}"
                              f"{explain_filter(filter_)}.")


def join_grouped_aggregate(rng, child: TableData, parent: TableData) -> Query | None:
    c, p = child.table, parent.table
    group = display_column(p) if rng.random() < 0.6 else pick_column(rng, p, "category")
    measure = pick_column(rng, c, "measure")
    if group is None or measure is None:
        return None
    group_phrase = label_phrase_for(p) if group.kind == "label" else f"{p.singular} {group.phrase}"
    if rng.random() < 0.3:
        prompt = fill(rng, ("How many {children} are there for each {group}?",
                            "Count the {children} per {group}."),
                      children=c.plural, group=group_phrase)
        expression = maybe_alias(rng, f"COUNT({child.ref(id_column(c))})", f"{snake(c.singular)}_count")
        what = f"counts {c.plural}"
    else:
        function, word = pick_aggregate(rng, measure)
        prompt = fill(rng, ("What is the {word} {phrase} for each {group}?",
                            "Show the {word} {phrase} of {children} per {group}.",
                            "List each {group} with the {word} {phrase} of its {children}."),
                      word=word, phrase=measure.phrase, group=group_phrase, children=c.plural)
        expression = maybe_alias(rng, f"{function}({child.ref(measure)})", aggregate_alias(function, measure))
        what = f"computes {function}({measure.name})"
    sql = f"SELECT {parent.ref(group)}, {expression} {join_clause(rng, child, parent)} GROUP BY {parent.ref(group)}"
    return Query(prompt, sql, f"This query joins {c.name} with {p.name} on {fk_column(c).name}, groups by "
                              f"{group.name} and {what} for each group.")


def compare_with_average(rng, data: TableData) -> Query | None:
    t = data.table
    measure = pick_column(rng, t, "measure")
    if measure is None or len(set(data.values(measure))) < 2:
        return None
    above = rng.random() < 0.7
    direction = "above" if above else "below"
    prompt = fill(rng, ("Which {plural} have {a_phrase} {direction} the average?",
                        "List {plural} whose {phrase} is {direction} the average {phrase} of all {plural}.",
                        "Find the {plural} with {article}-average {phrase}."),
                  plural=t.plural, a_phrase=with_article(measure.phrase), phrase=measure.phrase,
                  direction=direction, article="an above" if above else "a below")
    shown = display_column(t)
    operator = ">" if above else "<"
    sql = (f"SELECT {shown.name}, {measure.name} FROM {t.name} WHERE {measure.name} {operator} "
           f"(SELECT AVG({measure.name}) FROM {t.name})")
    return Query(prompt, sql, f"This query compares each row's {measure.name} with the average computed in "
                              f"a subquery and keeps the {t.plural} {direction} it.")


def extreme_via_subquery(rng, data: TableData) -> Query | None:
    t = data.table
    measure = pick_column(rng, t, "measure")
    filter_ = category_filter(rng, data) if rng.random() < 0.4 else None
    if measure is None:
        return None
    function = rng.choice(("MAX", "MIN"))
    extreme = "highest" if function == "MAX" else "lowest"
    shown = display_column(t)
    prompt = fill(rng, ("Which {one} has the {extreme} {phrase}{scope}?",
                        "What is the {label} of the {one} with the {extreme} {phrase}{scope}?"),
                  one=t.singular, extreme=extreme, phrase=measure.phrase, label=shown.phrase,
                  scope=f" among {t.plural} {filter_.english}" if filter_ else "")
    inner = f"SELECT {function}({measure.name}) FROM {t.name}{where(filter_)}"
    outer_filter = f" AND {filter_.sql}" if filter_ else ""
    sql = f"SELECT {shown.name} FROM {t.name} WHERE {measure.name} = ({inner}){outer_filter}"
    return Query(prompt, sql, f"This query finds the {extreme} {measure.name} with a subquery and returns the "
                              f"{t.singular} holding it.")


def parents_with_children(rng, child: TableData, parent: TableData) -> Query | None:
    c, p = child.table, parent.table
    child.alias = parent.alias = ""  # plain column names read better in IN subqueries
    filter_ = any_filter(rng, child)
    if filter_ is None:
        return None
    negate = rng.random() < 0.25
    shown = display_column(p)
    quantity = "no " + c.plural if negate else rng.choice(("at least one " + c.singular, c.plural))
    prompt = fill(rng, ("List the {labels} of {parents} that have {children} {filter}.",
                        "Which {parents} have {children} {filter}?"),
                  labels=plural_phrase(shown), parents=p.plural, children=quantity, filter=filter_.english)
    key, fk = id_column(p), fk_column(c)
    sql = (f"SELECT {shown.name} FROM {p.name} WHERE {key.name} {'NOT IN' if negate else 'IN'} "
           f"(SELECT {fk.name} FROM {c.name} WHERE {filter_.sql})")
    return Query(prompt, sql, f"This query uses a subquery on {c.name}{explain_filter(filter_)} to select the "
                              f"{p.plural} whose {key.name} is {'not ' if negate else ''}among the results.")


def rank_within_group(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    measure = pick_column(rng, t, "measure")
    if group is None or measure is None:
        return None
    function = rng.choice(("RANK", "DENSE_RANK", "ROW_NUMBER"))
    shown = display_column(t)
    prompt = fill(rng, ("Rank {plural} by {phrase} within each {group}.",
                        "Show each {one}'s rank by {phrase} inside its {group}, highest first.",
                        "For every {group}, rank the {plural} from highest to lowest {phrase}."),
                  plural=t.plural, one=t.singular, phrase=measure.phrase, group=group.phrase)
    sql = (f"SELECT {shown.name}, {group.name}, {measure.name}, {function}() OVER (PARTITION BY {group.name} "
           f"ORDER BY {measure.name} DESC) AS {measure.name}_rank FROM {t.name}")
    return Query(prompt, sql, f"This query uses {function}() partitioned by {group.name} and ordered by "
                              f"{measure.name} descending to rank the {t.plural} within each group.")


def running_total(rng, data: TableData) -> Query | None:
    t = data.table
    day = pick_column(rng, t, "date")
    measure = pick_column(rng, t, "measure", additive_only=True)
    # Equal dates would make the running total depend on row order.
    if day is None or measure is None or len(set(data.values(day))) < len(data.rows):
        return None
    prompt = fill(rng, ("Show the running total of {phrase} ordered by {day}.",
                        "Calculate the cumulative {phrase} of {plural} over time by {day}.",
                        "List each {day} with the {phrase} and its cumulative sum."),
                  phrase=measure.phrase, day=day.phrase, plural=t.plural)
    sql = (f"SELECT {day.name}, {measure.name}, SUM({measure.name}) OVER (ORDER BY {day.name}) "
           f"AS running_total FROM {t.name}")
    return Query(prompt, sql, f"This query computes a running SUM of {measure.name} with a window ordered by "
                              f"{day.name}.")


def compare_with_group_average(rng, data: TableData) -> Query | None:
    t = data.table
    group = pick_column(rng, t, "category")
    measure = pick_column(rng, t, "measure")
    if group is None or measure is None:
        return None
    shown = display_column(t)
    prompt = fill(rng, ("Show each {one}'s {phrase} next to the average {phrase} of its {group}.",
                        "For every {one}, list the {phrase} and the average {phrase} in the same {group}."),
                  one=t.singular, phrase=measure.phrase, group=group.phrase)
    sql = (f"SELECT {shown.name}, {group.name}, {measure.name}, AVG({measure.name}) OVER (PARTITION BY "
           f"{group.name}) AS avg_{measure.name}_per_{group.name} FROM {t.name}")
    return Query(prompt, sql, f"This query uses AVG() as a window function partitioned by {group.name} to show "
                              f"each row's {measure.name} beside its group average.")


def previous_value(rng, data: TableData) -> Query | None:
    t = data.table
    day = pick_column(rng, t, "date")
    measure = pick_column(rng, t, "measure")
    if day is None or measure is None or len(set(data.values(day))) < len(data.rows):
        return None
    prompt = fill(rng, ("For each {one}, show the {phrase} and the {phrase} of the previous {one} by {day}.",
                        "Compare each {one}'s {phrase} with the one before it, ordered by {day}."),
                  one=t.singular, phrase=measure.phrase, day=day.phrase)
    sql = (f"SELECT {day.name}, {measure.name}, LAG({measure.name}) OVER (ORDER BY {day.name}) "
           f"AS previous_{measure.name} FROM {t.name}")
    return Query(prompt, sql, f"This query uses LAG() ordered by {day.name} to show the previous row's "
                              f"{measure.name} next to each {t.singular}.")


def insert_row(rng, data: TableData) -> Query | None:
    t = data.table
    new_row = {}
    for column in t.columns:
        if column.kind == "id":
            new_row[column.name] = len(data.rows) + 1
        elif column.kind == "label":
            unused = [v for v in column.pool if v not in data.values(column)]
            if not unused:
                return None  # a new row needs a name no existing row has
            new_row[column.name] = rng.choice(unused)
        elif column.kind == "fk":
            new_row[column.name] = rng.choice(DETACHED_PARENT_IDS)
        else:
            new_row[column.name] = draw_value(rng, column)
    described = [f"{c.phrase or c.name} {sql_literal(new_row[c.name])}" for c in t.columns]
    fields = ", ".join(described[:-1]) + " and " + described[-1]
    prompt = fill(rng, ("Insert a new {one} into the {table} table with {fields}.",
                        "Add {a_one} with {fields} to the {table} table.",
                        "Add a new record to {table}: {fields}."),
                  one=t.singular, a_one=with_article(t.singular), table=t.name, fields=fields)
    names = ", ".join(c.name for c in t.columns)
    values = ", ".join(sql_literal(new_row[c.name]) for c in t.columns)
    return Query(prompt, f"INSERT INTO {t.name} ({names}) VALUES ({values})",
                 f"This query inserts one new row into the {t.name} table with the given values.")


def update_rows(rng, data: TableData) -> Query | None:
    t = data.table
    measure = pick_column(rng, t, "measure")
    filter_ = category_filter(rng, data) or date_filter(rng, data)
    if measure is None or filter_ is None:
        return None
    # Percentage changes only suit amounts kept as decimals (prices, weights), not counts or ratings.
    scalable = measure.additive and isinstance(measure.pool[0], float)
    if scalable and rng.random() < 0.6:
        percent = rng.choice((5, 10, 15, 20, 25))
        raise_ = rng.random() < 0.6
        factor = f"{1 + percent / 100:.2f}" if raise_ else f"{1 - percent / 100:.2f}"
        prompt = fill(rng, ("{verb} the {phrase} of {who} by {p}%.", "{verb} the {phrase} by {p}% for {who}."),
                      verb="Increase" if raise_ else "Decrease", phrase=measure.phrase,
                      who=noun_with(filter_, t.plural), p=percent)
        assignment = f"{measure.name} = {measure.name} * {factor}"
    else:
        value = draw_value(rng, measure)
        prompt = fill(rng, ("Set the {phrase} to {v} for {who}.", "Update the {phrase} of {who} to {v}."),
                      phrase=measure.phrase, who=noun_with(filter_, t.plural), v=sql_literal(value))
        assignment = f"{measure.name} = {sql_literal(value)}"
    return Query(prompt, f"UPDATE {t.name} SET {assignment} WHERE {filter_.sql}",
                 f"This query updates {measure.name} in the {t.name} table for rows{explain_filter(filter_)}.")


def delete_rows(rng, data: TableData) -> Query | None:
    t = data.table
    filter_ = any_filter(rng, data)
    if filter_ is None:
        return None
    prompt = fill(rng, ("Delete all {plural} {filter}.", "Remove {plural} {filter} from the {table} table.",
                        "Delete records of {plural} {filter}."),
                  plural=t.plural, filter=filter_.english, table=t.name)
    return Query(prompt, f"DELETE FROM {t.name} WHERE {filter_.sql}",
                 f"This query deletes the rows of the {t.name} table{explain_filter(filter_)}.")


@dataclass(frozen=True)
class Shape:
    build: Callable[..., Query | None]
    complexity: str
    task_type: str
    weight: int  # relative frequency; roughly gretel's mix, with extra joins and aggregations
    joins: bool = False  # needs a child table and its parent

    @property
    def is_read(self) -> bool:
        return self.task_type != "data manipulation"


SHAPES: tuple[Shape, ...] = (
    Shape(select_by_filter, "basic SQL", "data retrieval", 10),
    Shape(select_by_two_conditions, "basic SQL", "data retrieval", 5),
    Shape(select_by_pattern, "basic SQL", "data retrieval", 3),
    Shape(select_in_list, "basic SQL", "data retrieval", 3),
    Shape(select_distinct, "basic SQL", "data retrieval", 3),
    Shape(select_top_n, "basic SQL", "data retrieval", 5),
    Shape(scalar_aggregate, "basic SQL", "analytics and reporting", 9),
    Shape(count_rows, "basic SQL", "analytics and reporting", 5),
    Shape(grouped_aggregate, "aggregation", "analytics and reporting", 8),
    Shape(grouped_count, "aggregation", "analytics and reporting", 4),
    Shape(grouped_having, "aggregation", "analytics and reporting", 4),
    Shape(grouped_top, "aggregation", "analytics and reporting", 4),
    Shape(join_list, "single join", "data retrieval", 5, joins=True),
    Shape(join_filtered_aggregate, "single join", "analytics and reporting", 6, joins=True),
    Shape(join_grouped_aggregate, "single join", "analytics and reporting", 6, joins=True),
    Shape(compare_with_average, "subqueries", "analytics and reporting", 3),
    Shape(extreme_via_subquery, "subqueries", "data retrieval", 3),
    Shape(parents_with_children, "subqueries", "data retrieval", 3, joins=True),
    Shape(rank_within_group, "window functions", "analytics and reporting", 2),
    Shape(running_total, "window functions", "analytics and reporting", 1),
    Shape(compare_with_group_average, "window functions", "analytics and reporting", 1),
    Shape(previous_value, "window functions", "analytics and reporting", 1),
    Shape(insert_row, "basic SQL", "data manipulation", 3),
    Shape(update_rows, "basic SQL", "data manipulation", 3),
    Shape(delete_rows, "basic SQL", "data manipulation", 2),
)

# --------------------------------------------------------------------------------------------------
# Verification: run the context and the gold query in a fresh in-memory database.
# --------------------------------------------------------------------------------------------------


def has_content(rows: list[tuple]) -> bool:
    """Non-empty and not just NULLs (an aggregate over no rows returns one NULL row)."""
    return any(value is not None for row in rows for value in row)


def ties_at_cut(connection: sqlite3.Connection, tie_check: tuple[str, int, int]) -> bool:
    unlimited_sql, limit, sort_index = tie_check
    rows = connection.execute(unlimited_sql).fetchall()
    return len(rows) > limit and rows[limit - 1][sort_index] == rows[limit][sort_index]


def query_holds(context: str, query: Query, is_read: bool) -> bool:
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(context)
        cursor = connection.execute(query.sql)
        if not is_read:
            return cursor.rowcount > 0  # a data change that touches nothing teaches nothing
        if not has_content(cursor.fetchall()):
            return False
        return not (query.tie_check and ties_at_cut(connection, query.tie_check))
    except sqlite3.Error:
        return False
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------------
# Row assembly.
# --------------------------------------------------------------------------------------------------

MAX_CONTEXT_CHARS = 900


def draw_tables(rng: random.Random, domain: Domain, shape: Shape) -> list[TableData] | None:
    if not shape.joins:
        return [populate(rng, rng.choice(domain.tables), rng.randint(2, 5))]
    children = [t for t in domain.tables if t.parent]
    if not children:
        return None
    child_table = rng.choice(children)
    parent = populate(rng, domain.table(child_table.parent), rng.randint(2, 3))
    child = populate(rng, child_table, rng.randint(2, 4), tuple(parent.values(id_column(parent.table))))
    assign_aliases(child, parent)
    return [parent, child]


def try_draw_row(rng: random.Random, domains: tuple[Domain, ...]) -> dict | None:
    domain = rng.choice(domains)
    shape = rng.choices(SHAPES, weights=[s.weight for s in SHAPES])[0]
    tables = draw_tables(rng, domain, shape)
    if tables is None:
        return None
    query = shape.build(rng, *reversed(tables))  # join shapes take (child, parent)
    if query is None:
        return None
    context = render_context(tables)
    if len(context) > MAX_CONTEXT_CHARS or not query_holds(context, query, shape.is_read):
        return None
    return {
        "id": 0,  # numbered once the split is complete
        "domain": domain.name,
        "domain_description": domain.description,
        "sql_complexity": shape.complexity,
        "sql_complexity_description": SQL_COMPLEXITY_DESCRIPTIONS[shape.complexity],
        "sql_task_type": shape.task_type,
        "sql_task_type_description": SQL_TASK_TYPE_DESCRIPTIONS[shape.task_type],
        "sql_prompt": query.prompt,
        "sql_context": context,
        "sql": query.sql,
        "sql_explanation": query.explanation,
    }


def generate_split(rng: random.Random, count: int, domains: tuple[Domain, ...], seen: set,
                   first_id: int) -> list[dict]:
    """Draw rows until count are verified; `seen` holds (prompt, context) pairs across all splits."""
    rows: list[dict] = []
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise RuntimeError("too many rejected draws; a shape or domain is probably broken")
        row = try_draw_row(rng, domains)
        if row is None or (row["sql_prompt"], row["sql_context"]) in seen:
            continue
        seen.add((row["sql_prompt"], row["sql_context"]))
        row["id"] = first_id + len(rows)
        rows.append(row)
    return rows


def generate(train_count: int, test_count: int, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    seen: set = set()
    train = generate_split(rng, train_count, DOMAINS, seen, first_id=1)
    test = generate_split(rng, test_count, TEST_DOMAINS, seen, first_id=train_count + 1)
    return {"train": train, "test": test}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def print_summary(splits: dict[str, list[dict]], out: Path) -> None:
    for name, rows in splits.items():
        path = out / f"{name}.jsonl"
        print(f"{name}: {len(rows)} rows -> {path} ({path.stat().st_size:,} bytes)")
        for column in ("sql_complexity", "sql_task_type", "domain"):
            counts = Counter(row[column] for row in rows)
            listed = ", ".join(f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            print(f"  {column}: {listed}")
        lengths = sorted(len(row["sql_context"]) for row in rows)
        print(f"  sql_context chars: min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/synthetic_text_to_sql"),
                        help="folder for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=2000, help="number of training rows")
    parser.add_argument("--test", type=int, default=200, help="number of test rows")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    splits = generate(args.train, args.test, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_jsonl(args.out / f"{name}.jsonl", rows)
    print_summary(splits, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
